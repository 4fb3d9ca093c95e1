// Asynchronous sweeps on the libuv thread pool. The main thread reads each
// socket's fd (and knows its SO_COOKIE, read when tracking started or in the
// same synchronous call as the fd); the worker makes the syscalls and then
// re-reads the cookie of every fd. A socket's cookie is unique for its
// lifetime and a closed socket never returns to its fd number, so a cookie
// that still matches after the reads proves the fd named the same socket
// for the whole time; any mismatch (the fd was closed, maybe reused) drops
// the row instead of attributing another socket's figures to it.
//
// The worker touches no JS value: it writes into the caller's typed arrays,
// whose data pointers are taken on the main thread and whose objects are
// kept alive by references until the promise settles.
#if defined(__linux__)

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cmath>
#include <cstring>

#include "args.h"
#include "probe.h"
#include "sockstate.h"
#include "tcp_info_layout.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

namespace sockstate {

namespace {

// Positions in a metrics row (Float64Array). Absent fields (an older kernel
// filled less of tcp_info) are NaN.
enum SampleSlot : int {
  kSampleResult = 0,    // 0, -errno, or kResultChanged
  kSampleState,         // tcpi_state
  kSampleRevents,       // poll revents, read only in CLOSE (else 0)
  kSampleStalled,       // 1 when retransmits, probes or backoff > 0
  kSampleRtt,           // smoothed RTT, µs
  kSampleRttvar,        // RTT variance, µs
  kSampleMinRtt,        // min RTT, µs (4.6)
  kSampleSndCwnd,       // congestion window, segments
  kSampleTotalRetrans,  // retransmitted segments over the lifetime (u32)
  kSampleRetrans,       // retransmitted segments in flight now
  kSampleLost,          // segments considered lost now
  kSampleUnacked,       // segments in flight now
  kSampleSegsOut,       // segments sent (u32, 4.2)
  kSampleBytesAcked,    // bytes acknowledged by the peer (4.1)
  kSampleBytesSent,     // bytes sent, retransmits included (4.19)
  kSampleBytesReceived, // bytes received (4.1)
  kSampleBytesRetrans,  // bytes retransmitted (4.19)
  kSampleLastDataRecv,  // ms since data was received
  kSampleLastAckRecv,   // ms since an ACK was received
  kSampleLastDataSent,  // ms since data was sent
  kSampleInfoLength,    // bytes of tcp_info the kernel filled
  kSampleSlots
};

// kSampleResult / kSlotResult value for a row whose fd no longer names the
// socket the caller meant (closed, or closed and reused).
constexpr int kResultChanged = 1;

int ReadCookie(int fd, uint64_t* cookie) {
  uint64_t value = 0;
  socklen_t len = sizeof(value);
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &value, &len) != 0) return -errno;
  *cookie = value;
  return 0;
}

bool Has(socklen_t len, size_t offset, size_t size) {
  return static_cast<size_t>(len) >= offset + size;
}

#define SOCKSTATE_HAS(len, member) \
  Has(len, offsetof(TcpInfo, member), sizeof(TcpInfo::member))

// One metrics row for one fd: TCP_INFO, and poll only in CLOSE (where the
// status depends on a pending error). Returns 0 or -errno.
int SampleFd(int fd, double* row) {
  for (int i = 0; i < kSampleSlots; ++i) row[i] = 0;
  TcpInfo info;
  std::memset(&info, 0, sizeof(info));
  socklen_t len = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
    row[kSampleResult] = -errno;
    return static_cast<int>(row[kSampleResult]);
  }
  if (info.state == TCP_CLOSE) {
    int revents = PollFd(fd);
    if (revents < 0) {
      row[kSampleResult] = revents;
      return revents;
    }
    row[kSampleRevents] = revents;
  }
  const double nan = std::nan("");
  row[kSampleState] = info.state;
  row[kSampleStalled] =
      (info.retransmits > 0 || info.probes > 0 || info.backoff > 0) ? 1 : 0;
  row[kSampleRtt] = info.rtt;
  row[kSampleRttvar] = info.rttvar;
  row[kSampleMinRtt] = SOCKSTATE_HAS(len, min_rtt) ? info.min_rtt : nan;
  row[kSampleSndCwnd] = info.snd_cwnd;
  row[kSampleTotalRetrans] = info.total_retrans;
  row[kSampleRetrans] = info.retrans;
  row[kSampleLost] = info.lost;
  row[kSampleUnacked] = info.unacked;
  row[kSampleSegsOut] = SOCKSTATE_HAS(len, segs_out) ? info.segs_out : nan;
  row[kSampleBytesAcked] =
      SOCKSTATE_HAS(len, bytes_acked) ? static_cast<double>(info.bytes_acked)
                                      : nan;
  row[kSampleBytesSent] =
      SOCKSTATE_HAS(len, bytes_sent) ? static_cast<double>(info.bytes_sent)
                                     : nan;
  row[kSampleBytesReceived] =
      SOCKSTATE_HAS(len, bytes_received)
          ? static_cast<double>(info.bytes_received)
          : nan;
  row[kSampleBytesRetrans] =
      SOCKSTATE_HAS(len, bytes_retrans)
          ? static_cast<double>(info.bytes_retrans)
          : nan;
  row[kSampleLastDataRecv] = info.last_data_recv;
  row[kSampleLastAckRecv] = info.last_ack_recv;
  row[kSampleLastDataSent] = info.last_data_sent;
  row[kSampleInfoLength] = static_cast<double>(len);
  return 0;
}

#undef SOCKSTATE_HAS

// Kind of sweep: metrics rows (Float64) or probe rows (Int32, the layout of
// probeMany, so the same state mapping applies).
enum SweepKind { kSweepSample, kSweepProbe };

class SweepWorker : public Napi::AsyncWorker {
 public:
  SweepWorker(Napi::Env env, SweepKind kind, const int32_t* fds,
              const uint64_t* cookies, size_t count, void* out,
              Napi::Object fds_obj, Napi::Object cookies_obj,
              Napi::Object out_obj)
      : Napi::AsyncWorker(env, "sockstate:sweep"),
        deferred_(Napi::Promise::Deferred::New(env)),
        kind_(kind),
        fds_(fds),
        cookies_(cookies),
        count_(count),
        out_(out),
        fds_ref_(Napi::Persistent(fds_obj)),
        cookies_ref_(Napi::Persistent(cookies_obj)),
        out_ref_(Napi::Persistent(out_obj)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    for (size_t i = 0; i < count_; ++i) {
      if (kind_ == kSweepSample) {
        SampleRow(i, static_cast<double*>(out_) + i * kSampleSlots);
      } else {
        ProbeRow(i, static_cast<int32_t*>(out_) + i * kProbeSlots);
      }
    }
  }

  void OnOK() override {
    deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(count_)));
  }

  void OnError(const Napi::Error& error) override {
    deferred_.Reject(error.Value());
  }

 private:
  // A row is kept only if the cookie read after the syscalls is the one
  // the caller expected.
  // A cookie that cannot be read (EBADF, ENOTSOCK) is not the expected
  // socket's either.
  int Verify(int fd, size_t i) {
    uint64_t cookie = 0;
    int rc = ReadCookie(fd, &cookie);
    return (rc != 0 || cookie != cookies_[i]) ? kResultChanged : 0;
  }

  void SampleRow(size_t i, double* row) {
    const int fd = fds_[i];
    if (fd < 0) {
      for (int k = 0; k < kSampleSlots; ++k) row[k] = 0;
      row[kSampleResult] = -EBADF;
      return;
    }
    SampleFd(fd, row);
    if (Verify(fd, i) != 0) {
      for (int k = 0; k < kSampleSlots; ++k) row[k] = 0;
      row[kSampleResult] = kResultChanged;
    }
  }

  void ProbeRow(size_t i, int32_t* row) {
    const int fd = fds_[i];
    if (fd < 0) {
      std::memset(row, 0, sizeof(int32_t) * kProbeSlots);
      row[kSlotResult] = -EBADF;
      return;
    }
    ProbeFd(fd, row);
    if (Verify(fd, i) != 0) {
      std::memset(row, 0, sizeof(int32_t) * kProbeSlots);
      row[kSlotResult] = kResultChanged;
    }
  }

  Napi::Promise::Deferred deferred_;
  const SweepKind kind_;
  const int32_t* fds_;
  const uint64_t* cookies_;
  const size_t count_;
  void* out_;
  Napi::ObjectReference fds_ref_;
  Napi::ObjectReference cookies_ref_;
  Napi::ObjectReference out_ref_;
};

bool BigUint64ArrayArg(const Napi::CallbackInfo& info, size_t i,
                       size_t min_length, uint64_t** data, size_t* length) {
  void* p = nullptr;
  if (!TypedArrayArg(info, i, napi_biguint64_array,
                     "argument must be a BigUint64Array", min_length, &p,
                     length)) {
    return false;
  }
  *data = static_cast<uint64_t*>(p);
  return true;
}

bool Float64ArrayArg(const Napi::CallbackInfo& info, size_t i,
                     size_t min_length, double** data, size_t* length) {
  void* p = nullptr;
  if (!TypedArrayArg(info, i, napi_float64_array,
                     "argument must be a Float64Array", min_length, &p,
                     length)) {
    return false;
  }
  *data = static_cast<double*>(p);
  return true;
}

void ThrowRange(Napi::Env env, const char* message) {
  ThrowCoded(Napi::RangeError::New(env, message), "ERR_OUT_OF_RANGE");
}

// sweepSample(fds: Int32Array, cookies: BigUint64Array, out: Float64Array)
//   -> Promise<count>. Sweeps fds.length rows; out holds SAMPLE_SLOTS each.
// sweepProbe(fds, cookies, out: Int32Array) -> Promise<count>: probeMany's
//   rows, cookie-checked.
Napi::Value StartSweep(const Napi::CallbackInfo& info, SweepKind kind) {
  Napi::Env env = info.Env();
  int32_t* fds = nullptr;
  uint64_t* cookies = nullptr;
  size_t count = 0;
  size_t cookie_count = 0;
  size_t out_length = 0;
  void* out = nullptr;
  if (!Int32ArrayArg(info, 0, 0, &fds, &count)) return Napi::Value();
  if (!BigUint64ArrayArg(info, 1, 0, &cookies, &cookie_count)) {
    return Napi::Value();
  }
  if (cookie_count < count) {
    ThrowRange(env, "cookies must hold fds.length entries");
    return Napi::Value();
  }
  if (kind == kSweepSample) {
    double* rows = nullptr;
    if (!Float64ArrayArg(info, 2, 0, &rows, &out_length)) return Napi::Value();
    if (out_length / kSampleSlots < count) {
      ThrowRange(env, "out must hold fds.length * SAMPLE_SLOTS");
      return Napi::Value();
    }
    out = rows;
  } else {
    int32_t* rows = nullptr;
    if (!Int32ArrayArg(info, 2, 0, &rows, &out_length)) return Napi::Value();
    if (out_length / kProbeSlots < count) {
      ThrowRange(env, "out must hold fds.length * PROBE_SLOTS");
      return Napi::Value();
    }
    out = rows;
  }
  auto* worker = new SweepWorker(env, kind, fds, cookies, count, out,
                                 info[0].As<Napi::Object>(),
                                 info[1].As<Napi::Object>(),
                                 info[2].As<Napi::Object>());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value SweepSample(const Napi::CallbackInfo& info) {
  return StartSweep(info, kSweepSample);
}

Napi::Value SweepProbe(const Napi::CallbackInfo& info) {
  return StartSweep(info, kSweepProbe);
}

// sample(fd, out: Float64Array, row) -> 0 | -errno: one metrics row, on the
// main thread, for a connection about to close (its fd read in this call).
Napi::Value Sample(const Napi::CallbackInfo& info) {
  int fd;
  double* out = nullptr;
  size_t length = 0;
  int row = 0;
  if (!FdArg(info, 0, &fd)) return Napi::Value();
  if (!Float64ArrayArg(info, 1, 0, &out, &length)) return Napi::Value();
  if (!IntArg(info, 2, 0, std::numeric_limits<int32_t>::max(), &row)) {
    return Napi::Value();
  }
  if ((static_cast<size_t>(row) + 1) * kSampleSlots > length) {
    ThrowRange(info.Env(), "out must hold (row + 1) * SAMPLE_SLOTS");
    return Napi::Value();
  }
  return Napi::Number::New(info.Env(),
                           SampleFd(fd, out + static_cast<size_t>(row) *
                                                  kSampleSlots));
}

// cookies(fds: Int32Array, out: BigUint64Array, start) -> 0 | -errno of the
// first failure: reads SO_COOKIE of fds[i] into out[start + i]; a failing
// or negative fd gets cookie 0 (no socket has cookie 0).
Napi::Value Cookies(const Napi::CallbackInfo& info) {
  int32_t* fds = nullptr;
  size_t count = 0;
  uint64_t* out = nullptr;
  size_t length = 0;
  int start = 0;
  if (!Int32ArrayArg(info, 0, 0, &fds, &count)) return Napi::Value();
  if (!BigUint64ArrayArg(info, 1, 0, &out, &length)) return Napi::Value();
  if (!IntArg(info, 2, 0, std::numeric_limits<int32_t>::max(), &start)) {
    return Napi::Value();
  }
  if (static_cast<size_t>(start) + count > length) {
    ThrowRange(info.Env(), "out must hold start + fds.length entries");
    return Napi::Value();
  }
  int first = 0;
  for (size_t i = 0; i < count; ++i) {
    uint64_t cookie = 0;
    int rc = fds[i] < 0 ? -EBADF : ReadCookie(fds[i], &cookie);
    if (rc != 0 && first == 0) first = rc;
    out[static_cast<size_t>(start) + i] = rc == 0 ? cookie : 0;
  }
  return Napi::Number::New(info.Env(), first);
}

}  // namespace

void InitSweep(Napi::Env env, Napi::Object exports) {
  exports.Set("sweepSample", Napi::Function::New(env, SweepSample, "sweepSample"));
  exports.Set("sweepProbe", Napi::Function::New(env, SweepProbe, "sweepProbe"));
  exports.Set("sample", Napi::Function::New(env, Sample, "sample"));
  exports.Set("cookies", Napi::Function::New(env, Cookies, "cookies"));

  Napi::Object slots = Napi::Object::New(env);
  slots.Set("RESULT", static_cast<double>(kSampleResult));
  slots.Set("STATE", static_cast<double>(kSampleState));
  slots.Set("REVENTS", static_cast<double>(kSampleRevents));
  slots.Set("STALLED", static_cast<double>(kSampleStalled));
  slots.Set("RTT", static_cast<double>(kSampleRtt));
  slots.Set("RTTVAR", static_cast<double>(kSampleRttvar));
  slots.Set("MIN_RTT", static_cast<double>(kSampleMinRtt));
  slots.Set("SND_CWND", static_cast<double>(kSampleSndCwnd));
  slots.Set("TOTAL_RETRANS", static_cast<double>(kSampleTotalRetrans));
  slots.Set("RETRANS", static_cast<double>(kSampleRetrans));
  slots.Set("LOST", static_cast<double>(kSampleLost));
  slots.Set("UNACKED", static_cast<double>(kSampleUnacked));
  slots.Set("SEGS_OUT", static_cast<double>(kSampleSegsOut));
  slots.Set("BYTES_ACKED", static_cast<double>(kSampleBytesAcked));
  slots.Set("BYTES_SENT", static_cast<double>(kSampleBytesSent));
  slots.Set("BYTES_RECEIVED", static_cast<double>(kSampleBytesReceived));
  slots.Set("BYTES_RETRANS", static_cast<double>(kSampleBytesRetrans));
  slots.Set("LAST_DATA_RECV", static_cast<double>(kSampleLastDataRecv));
  slots.Set("LAST_ACK_RECV", static_cast<double>(kSampleLastAckRecv));
  slots.Set("LAST_DATA_SENT", static_cast<double>(kSampleLastDataSent));
  slots.Set("INFO_LENGTH", static_cast<double>(kSampleInfoLength));
  slots.Set("COUNT", static_cast<double>(kSampleSlots));
  exports.Set("sampleSlots", slots);
  exports.Set("sweepChanged", static_cast<double>(kResultChanged));
}

}  // namespace sockstate

#endif  // defined(__linux__)
