// The project's own copy of the kernel's struct tcp_info (Linux 6.18,
// include/uapi/linux/tcp.h). glibc declares only the first 104 bytes and the
// build host's <linux/tcp.h> may be older than the running kernel, so the
// decoded layout must not come from either.
#ifndef SOCKSTATE_TCP_INFO_LAYOUT_H_
#define SOCKSTATE_TCP_INFO_LAYOUT_H_

#include <cstddef>
#include <cstdint>

namespace sockstate {

struct TcpInfo {
  uint8_t state;
  uint8_t ca_state;
  uint8_t retransmits;
  uint8_t probes;
  uint8_t backoff;
  uint8_t options;
  // Bitfield order is ABI-dependent: read these through the members only.
  uint8_t snd_wscale : 4, rcv_wscale : 4;
  uint8_t delivery_rate_app_limited : 1, fastopen_client_fail : 2;

  uint32_t rto;
  uint32_t ato;
  uint32_t snd_mss;
  uint32_t rcv_mss;

  uint32_t unacked;
  uint32_t sacked;
  uint32_t lost;
  uint32_t retrans;
  uint32_t fackets;

  uint32_t last_data_sent;
  uint32_t last_ack_sent;
  uint32_t last_data_recv;
  uint32_t last_ack_recv;

  uint32_t pmtu;
  uint32_t rcv_ssthresh;
  uint32_t rtt;
  uint32_t rttvar;
  uint32_t snd_ssthresh;
  uint32_t snd_cwnd;
  uint32_t advmss;
  uint32_t reordering;

  uint32_t rcv_rtt;
  uint32_t rcv_space;

  uint32_t total_retrans;

  uint64_t pacing_rate;
  uint64_t max_pacing_rate;
  uint64_t bytes_acked;
  uint64_t bytes_received;
  uint32_t segs_out;
  uint32_t segs_in;

  uint32_t notsent_bytes;
  uint32_t min_rtt;
  uint32_t data_segs_in;
  uint32_t data_segs_out;

  uint64_t delivery_rate;

  uint64_t busy_time;
  uint64_t rwnd_limited;
  uint64_t sndbuf_limited;

  uint32_t delivered;
  uint32_t delivered_ce;

  uint64_t bytes_sent;
  uint64_t bytes_retrans;
  uint32_t dsack_dups;
  uint32_t reord_seen;

  uint32_t rcv_ooopack;
  uint32_t snd_wnd;

  uint32_t rcv_wnd;
  uint32_t rehash;

  uint16_t total_rto;
  uint16_t total_rto_recoveries;
  uint32_t total_rto_time;

  uint32_t received_ce;
  uint32_t delivered_e1_bytes;
  uint32_t delivered_e0_bytes;
  uint32_t delivered_ce_bytes;
  uint32_t received_e1_bytes;
  uint32_t received_e0_bytes;
  uint32_t received_ce_bytes;

  // Filled by 6.18+, but its layout changed between releases: never decoded.
  uint8_t reserved_unstable[4];
};

// Offsets checked against the kernel's table of when each field appeared.
static_assert(offsetof(TcpInfo, rto) == 8, "tcp_info: rto");
static_assert(offsetof(TcpInfo, total_retrans) == 100, "tcp_info: 2.6 end");
static_assert(offsetof(TcpInfo, pacing_rate) == 104, "tcp_info: 3.15");
static_assert(offsetof(TcpInfo, bytes_acked) == 120, "tcp_info: 4.1");
static_assert(offsetof(TcpInfo, segs_out) == 136, "tcp_info: 4.2");
static_assert(offsetof(TcpInfo, notsent_bytes) == 144, "tcp_info: 4.6");
static_assert(offsetof(TcpInfo, delivery_rate) == 160, "tcp_info: 4.9");
static_assert(offsetof(TcpInfo, busy_time) == 168, "tcp_info: 4.10");
static_assert(offsetof(TcpInfo, delivered) == 192, "tcp_info: 4.18");
static_assert(offsetof(TcpInfo, bytes_sent) == 200, "tcp_info: 4.19");
static_assert(offsetof(TcpInfo, rcv_ooopack) == 224, "tcp_info: 5.4");
static_assert(offsetof(TcpInfo, rcv_wnd) == 232, "tcp_info: 6.2");
static_assert(offsetof(TcpInfo, total_rto) == 240, "tcp_info: 6.7");
static_assert(offsetof(TcpInfo, total_rto_time) == 244, "tcp_info: 6.7");
static_assert(offsetof(TcpInfo, received_ce) == 248, "tcp_info: 6.18");
static_assert(offsetof(TcpInfo, received_ce_bytes) == 272, "tcp_info: 6.18");
static_assert(sizeof(TcpInfo) == 280, "tcp_info: 6.18 size");

// Bytes of the struct the connection probe needs: up to data_segs_out, so
// notsent_bytes is there on every kernel since 4.6.
constexpr size_t kProbeInfoLength = offsetof(TcpInfo, delivery_rate);

// tcpInfo() copies the raw struct into a caller-owned buffer and appends the
// four bitfields, decoded through the struct members, at these positions.
enum BitfieldSlot : size_t {
  kSndWscale = sizeof(TcpInfo),
  kRcvWscale,
  kDeliveryRateAppLimited,
  kFastopenClientFail,
  kTcpInfoBufferSize
};

}  // namespace sockstate

#endif  // SOCKSTATE_TCP_INFO_LAYOUT_H_
