#if defined(__linux__)

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

#include "args.h"
#include "sockstate.h"
#include "tcp_info_layout.h"

namespace sockstate {

namespace {

// tcpInfo(fd, out: Uint8Array(kTcpInfoBufferSize)) -> filled length | -errno.
// Bytes [0, length) are the kernel's struct; bytes past the struct hold the
// four bitfields decoded through the struct members.
Napi::Value GetTcpInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return Napi::Value();
  void* data = nullptr;
  size_t length = 0;
  if (!TypedArrayArg(info, 1, napi_uint8_array, "out must be a Uint8Array",
                     kTcpInfoBufferSize, &data, &length)) {
    return Napi::Value();
  }

  TcpInfo raw;
  std::memset(&raw, 0, sizeof(raw));
  socklen_t len = sizeof(raw);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &raw, &len) != 0) {
    // A UDP socket over IPv6 answers ENOPROTOOPT where AF_UNIX and UDP over
    // IPv4 answer EOPNOTSUPP: one code for "not a TCP socket".
    int err = errno;
    return Napi::Number::New(env, err == ENOPROTOOPT ? -EOPNOTSUPP : -err);
  }
  uint8_t* bytes = static_cast<uint8_t*>(data);
  std::memcpy(bytes, &raw, sizeof(raw));
  bytes[kSndWscale] = raw.snd_wscale;
  bytes[kRcvWscale] = raw.rcv_wscale;
  bytes[kDeliveryRateAppLimited] = raw.delivery_rate_app_limited;
  bytes[kFastopenClientFail] = raw.fastopen_client_fail;
  return Napi::Number::New(env, static_cast<double>(len));
}

void AddField(Napi::Env env, Napi::Object fields, const char* name,
              size_t offset, size_t size, size_t end) {
  Napi::Array entry = Napi::Array::New(env, 3);
  entry.Set(0u, static_cast<double>(offset));
  entry.Set(1u, static_cast<double>(size));
  entry.Set(2u, static_cast<double>(end));
  fields.Set(name, entry);
}

}  // namespace

void InitTcpInfo(Napi::Env env, Napi::Object exports) {
  exports.Set("tcpInfo", Napi::Function::New(env, GetTcpInfo, "tcpInfo"));

  // name -> [offset in the buffer, size in bytes, struct length needed].
  Napi::Object fields = Napi::Object::New(env);
#define SOCKSTATE_FIELD(js, member)                                      \
  AddField(env, fields, js, offsetof(TcpInfo, member),                   \
           sizeof(TcpInfo::member),                                     \
           offsetof(TcpInfo, member) + sizeof(TcpInfo::member))
  SOCKSTATE_FIELD("state", state);
  SOCKSTATE_FIELD("caState", ca_state);
  SOCKSTATE_FIELD("retransmits", retransmits);
  SOCKSTATE_FIELD("probes", probes);
  SOCKSTATE_FIELD("backoff", backoff);
  SOCKSTATE_FIELD("options", options);
  SOCKSTATE_FIELD("rto", rto);
  SOCKSTATE_FIELD("ato", ato);
  SOCKSTATE_FIELD("sndMss", snd_mss);
  SOCKSTATE_FIELD("rcvMss", rcv_mss);
  SOCKSTATE_FIELD("unacked", unacked);
  SOCKSTATE_FIELD("sacked", sacked);
  SOCKSTATE_FIELD("lost", lost);
  SOCKSTATE_FIELD("retrans", retrans);
  SOCKSTATE_FIELD("fackets", fackets);
  SOCKSTATE_FIELD("lastDataSent", last_data_sent);
  SOCKSTATE_FIELD("lastAckSent", last_ack_sent);
  SOCKSTATE_FIELD("lastDataRecv", last_data_recv);
  SOCKSTATE_FIELD("lastAckRecv", last_ack_recv);
  SOCKSTATE_FIELD("pmtu", pmtu);
  SOCKSTATE_FIELD("rcvSsthresh", rcv_ssthresh);
  SOCKSTATE_FIELD("rtt", rtt);
  SOCKSTATE_FIELD("rttvar", rttvar);
  SOCKSTATE_FIELD("sndSsthresh", snd_ssthresh);
  SOCKSTATE_FIELD("sndCwnd", snd_cwnd);
  SOCKSTATE_FIELD("advmss", advmss);
  SOCKSTATE_FIELD("reordering", reordering);
  SOCKSTATE_FIELD("rcvRtt", rcv_rtt);
  SOCKSTATE_FIELD("rcvSpace", rcv_space);
  SOCKSTATE_FIELD("totalRetrans", total_retrans);
  SOCKSTATE_FIELD("pacingRate", pacing_rate);
  SOCKSTATE_FIELD("maxPacingRate", max_pacing_rate);
  SOCKSTATE_FIELD("bytesAcked", bytes_acked);
  SOCKSTATE_FIELD("bytesReceived", bytes_received);
  SOCKSTATE_FIELD("segsOut", segs_out);
  SOCKSTATE_FIELD("segsIn", segs_in);
  SOCKSTATE_FIELD("notsentBytes", notsent_bytes);
  SOCKSTATE_FIELD("minRtt", min_rtt);
  SOCKSTATE_FIELD("dataSegsIn", data_segs_in);
  SOCKSTATE_FIELD("dataSegsOut", data_segs_out);
  SOCKSTATE_FIELD("deliveryRate", delivery_rate);
  SOCKSTATE_FIELD("busyTime", busy_time);
  SOCKSTATE_FIELD("rwndLimited", rwnd_limited);
  SOCKSTATE_FIELD("sndbufLimited", sndbuf_limited);
  SOCKSTATE_FIELD("delivered", delivered);
  SOCKSTATE_FIELD("deliveredCe", delivered_ce);
  SOCKSTATE_FIELD("bytesSent", bytes_sent);
  SOCKSTATE_FIELD("bytesRetrans", bytes_retrans);
  SOCKSTATE_FIELD("dsackDups", dsack_dups);
  SOCKSTATE_FIELD("reordSeen", reord_seen);
  SOCKSTATE_FIELD("rcvOoopack", rcv_ooopack);
  SOCKSTATE_FIELD("sndWnd", snd_wnd);
  SOCKSTATE_FIELD("rcvWnd", rcv_wnd);
  SOCKSTATE_FIELD("rehash", rehash);
  SOCKSTATE_FIELD("totalRto", total_rto);
  SOCKSTATE_FIELD("totalRtoRecoveries", total_rto_recoveries);
  SOCKSTATE_FIELD("totalRtoTime", total_rto_time);
  SOCKSTATE_FIELD("receivedCe", received_ce);
  SOCKSTATE_FIELD("deliveredE1Bytes", delivered_e1_bytes);
  SOCKSTATE_FIELD("deliveredE0Bytes", delivered_e0_bytes);
  SOCKSTATE_FIELD("deliveredCeBytes", delivered_ce_bytes);
  SOCKSTATE_FIELD("receivedE1Bytes", received_e1_bytes);
  SOCKSTATE_FIELD("receivedE0Bytes", received_e0_bytes);
  SOCKSTATE_FIELD("receivedCeBytes", received_ce_bytes);
#undef SOCKSTATE_FIELD
  // The bitfields share bytes 6 and 7, which every kernel fills.
  AddField(env, fields, "sndWscale", kSndWscale, 1, 7);
  AddField(env, fields, "rcvWscale", kRcvWscale, 1, 7);
  AddField(env, fields, "deliveryRateAppLimited", kDeliveryRateAppLimited, 1,
           8);
  AddField(env, fields, "fastopenClientFail", kFastopenClientFail, 1, 8);

  Napi::Object layout = Napi::Object::New(env);
  layout.Set("size", static_cast<double>(sizeof(TcpInfo)));
  layout.Set("bufferSize", static_cast<double>(kTcpInfoBufferSize));
  layout.Set("fields", fields);
  exports.Set("tcpInfoLayout", layout);
}

}  // namespace sockstate

#endif  // defined(__linux__)
