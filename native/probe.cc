#if defined(__linux__)

#include "probe.h"

#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include "args.h"
#include "sockstate.h"
#include "tcp_info_layout.h"

namespace sockstate {

namespace {

constexpr short kPollEvents = POLLIN | POLLOUT | POLLRDHUP;

// Records a failed call in the probe slots and passes its -errno through.
int Fail(int32_t* out, int rc, ProbeSyscall call) {
  out[kSlotResult] = rc;
  out[kSlotSyscall] = call;
  return rc;
}

int IoctlInt(int fd, unsigned long request, int32_t* value) {
  int n = 0;
  if (ioctl(fd, request, &n) != 0) return -errno;
  *value = n;
  return 0;
}

bool FinSequenced(int state) {
  // States in which our FIN has a sequence number but no ACK for it yet.
  return state == TCP_FIN_WAIT1 || state == TCP_CLOSING ||
         state == TCP_LAST_ACK;
}

// AF_UNIX and other stream sockets without TCP_INFO: poll and SIOCINQ.
int ProbeStream(int fd, int32_t* out) {
  int type = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return Fail(out, -errno, kCallGetsockopt);
  }
  // A datagram socket has no connection state to report.
  if (type != SOCK_STREAM && type != SOCK_SEQPACKET) {
    return Fail(out, -EOPNOTSUPP, kCallGetsockopt);
  }
  int listening = 0;
  len = sizeof(listening);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) {
    return Fail(out, -errno, kCallGetsockopt);
  }
  int revents = PollFd(fd);
  if (revents < 0) return Fail(out, revents, kCallPoll);

  out[kSlotKind] = kKindStream;
  out[kSlotState] = -1;
  out[kSlotRevents] = revents;
  out[kSlotListening] = listening ? 1 : 0;
  // Unsent and unacknowledged stay 0: AF_UNIX has no send queue of its
  // own, and its SIOCOUTQ counts buffer memory, not bytes.
  if (!listening && (revents & POLLIN)) {
    int rc = IoctlInt(fd, SIOCINQ, &out[kSlotUnread]);
    if (rc != 0) return Fail(out, rc, kCallIoctl);
  }
  return 0;
}

}  // namespace

int PollFd(int fd) {
  struct pollfd p;
  p.fd = fd;
  p.events = kPollEvents;
  p.revents = 0;
  int rc;
  do {
    rc = poll(&p, 1, 0);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return -errno;
  // poll() does not fail for a closed fd; it flags it.
  if (p.revents & POLLNVAL) return -EBADF;
  return p.revents;
}

int ProbeFd(int fd, int32_t* out) {
  std::memset(out, 0, sizeof(int32_t) * kProbeSlots);
  TcpInfo info;
  std::memset(&info, 0, kProbeInfoLength);
  socklen_t len = kProbeInfoLength;

  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
    int err = errno;
    // Non-TCP sockets refuse TCP_INFO: EOPNOTSUPP (AF_UNIX, UDP) or
    // ENOPROTOOPT. Anything else (EBADF, ENOTSOCK) is the answer.
    if (err == EOPNOTSUPP || err == ENOPROTOOPT) return ProbeStream(fd, out);
    return Fail(out, -err, kCallGetsockopt);
  }

  const int state = info.state;
  int revents = PollFd(fd);
  if (revents < 0) return Fail(out, revents, kCallPoll);

  out[kSlotKind] = kKindTcp;
  out[kSlotState] = state;
  out[kSlotRevents] = revents;
  out[kSlotRetransmits] = info.retransmits;
  out[kSlotProbes] = info.probes;
  out[kSlotBackoff] = info.backoff;
  out[kSlotInfoLength] = static_cast<int32_t>(len);
  out[kSlotListening] = state == TCP_LISTEN ? 1 : 0;
  // The peer's silence by the kernel's clocks, from this same read, so
  // that a reuse check bounding it needs no second TCP_INFO.
  out[kSlotLastDataRecv] = static_cast<int32_t>(info.last_data_recv);
  out[kSlotLastAckRecv] = static_cast<int32_t>(info.last_ack_recv);

  // On LISTEN, SIOCINQ/SIOCOUTQ are EINVAL and tcpi_unacked is the accept
  // queue; during the handshake no data can be queued either way.
  if (state == TCP_LISTEN) return 0;

  // Without POLLIN nothing is unread; with it (data, FIN or error) only the
  // ioctl gives the count.
  if (revents & POLLIN) {
    int rc = IoctlInt(fd, SIOCINQ, &out[kSlotUnread]);
    if (rc != 0) return Fail(out, rc, kCallIoctl);
  }
  // Nothing can be queued for sending in the handshake, nor in CLOSE: a
  // reset or a timeout purges the write queue (tcp_write_queue_purge, then
  // tcp_done) but leaves write_seq, snd_nxt and snd_una as they were, so
  // tcpi_notsent_bytes and SIOCOUTQ would still count the discarded bytes.
  if (state == TCP_SYN_SENT || state == TCP_SYN_RECV || state == TCP_CLOSE) {
    return 0;
  }

  int32_t unsent = 0;
  if (len >= offsetof(TcpInfo, notsent_bytes) + sizeof(info.notsent_bytes)) {
    unsent = static_cast<int32_t>(info.notsent_bytes);
  } else {
    int rc = IoctlInt(fd, SIOCOUTQNSD, &unsent);
    if (rc != 0) return Fail(out, rc, kCallIoctl);
  }

  // tcpi_unacked (packets_out) == 0 means snd_nxt == snd_una: nothing is in
  // flight, and the SIOCOUTQ call can be skipped.
  int32_t unacked = 0;
  if (info.unacked > 0) {
    int32_t outq = 0;
    int rc = IoctlInt(fd, SIOCOUTQ, &outq);
    if (rc != 0) return Fail(out, rc, kCallIoctl);
    unacked = outq - unsent;
  }

  // write_seq counts our FIN: it is in the unsent part when anything is
  // unsent (it is last in the queue), else in the unacknowledged part.
  if (FinSequenced(state)) {
    if (unsent > 0) {
      unsent -= 1;
    } else if (unacked > 0) {
      unacked -= 1;
    }
  }
  out[kSlotUnsent] = unsent < 0 ? 0 : unsent;
  out[kSlotUnacked] = unacked < 0 ? 0 : unacked;
  return 0;
}

namespace {

// probe(fd, out: Int32Array(kProbeSlots)) -> 0 | -errno
Napi::Value Probe(const Napi::CallbackInfo& info) {
  int fd;
  int32_t* out;
  size_t length;
  if (!FdArg(info, 0, &fd)) return Napi::Value();
  if (!Int32ArrayArg(info, 1, kProbeSlots, &out, &length)) {
    return Napi::Value();
  }
  return Napi::Number::New(info.Env(), ProbeFd(fd, out));
}

// poll(fd) -> revents | -errno
Napi::Value Poll(const Napi::CallbackInfo& info) {
  int fd;
  if (!FdArg(info, 0, &fd)) return Napi::Value();
  return Napi::Number::New(info.Env(), PollFd(fd));
}

// probeMany(fds: Int32Array, out: Int32Array(fds.length * kProbeSlots)) -> n
// A negative fd (a socket without one) yields -EBADF without a syscall; a
// failing fd fills its own kSlotResult and never stops the others.
Napi::Value ProbeMany(const Napi::CallbackInfo& info) {
  int32_t* fds;
  size_t count;
  int32_t* out;
  size_t out_length;
  if (!Int32ArrayArg(info, 0, 0, &fds, &count)) return Napi::Value();
  if (!Int32ArrayArg(info, 1, 0, &out, &out_length)) return Napi::Value();
  if (out_length / kProbeSlots < count) {
    ThrowCoded(Napi::RangeError::New(info.Env(),
                                     "out must hold fds.length * PROBE_SLOTS"),
               "ERR_OUT_OF_RANGE");
    return Napi::Value();
  }
  for (size_t i = 0; i < count; ++i) {
    int32_t* slot = out + i * kProbeSlots;
    if (fds[i] < 0) {
      std::memset(slot, 0, sizeof(int32_t) * kProbeSlots);
      slot[kSlotResult] = -EBADF;
      continue;
    }
    ProbeFd(fds[i], slot);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(count));
}

}  // namespace

void InitProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("poll", Napi::Function::New(env, Poll, "poll"));
  exports.Set("probeMany", Napi::Function::New(env, ProbeMany, "probeMany"));

  Napi::Object slots = Napi::Object::New(env);
  slots.Set("KIND", static_cast<double>(kSlotKind));
  slots.Set("STATE", static_cast<double>(kSlotState));
  slots.Set("REVENTS", static_cast<double>(kSlotRevents));
  slots.Set("UNREAD", static_cast<double>(kSlotUnread));
  slots.Set("UNSENT", static_cast<double>(kSlotUnsent));
  slots.Set("UNACKED", static_cast<double>(kSlotUnacked));
  slots.Set("RETRANSMITS", static_cast<double>(kSlotRetransmits));
  slots.Set("PROBES", static_cast<double>(kSlotProbes));
  slots.Set("BACKOFF", static_cast<double>(kSlotBackoff));
  slots.Set("INFO_LENGTH", static_cast<double>(kSlotInfoLength));
  slots.Set("LISTENING", static_cast<double>(kSlotListening));
  slots.Set("RESULT", static_cast<double>(kSlotResult));
  slots.Set("SYSCALL", static_cast<double>(kSlotSyscall));
  slots.Set("LAST_DATA_RECV", static_cast<double>(kSlotLastDataRecv));
  slots.Set("LAST_ACK_RECV", static_cast<double>(kSlotLastAckRecv));
  slots.Set("COUNT", static_cast<double>(kProbeSlots));
  exports.Set("probeSlots", slots);

  Napi::Object kinds = Napi::Object::New(env);
  kinds.Set("TCP", static_cast<double>(kKindTcp));
  kinds.Set("STREAM", static_cast<double>(kKindStream));
  exports.Set("probeKinds", kinds);

  Napi::Array calls = Napi::Array::New(env);
  calls.Set(static_cast<uint32_t>(kCallGetsockopt), "getsockopt");
  calls.Set(static_cast<uint32_t>(kCallPoll), "poll");
  calls.Set(static_cast<uint32_t>(kCallIoctl), "ioctl");
  exports.Set("probeSyscalls", calls);

  Napi::Object poll_bits = Napi::Object::New(env);
  poll_bits.Set("POLLIN", static_cast<double>(POLLIN));
  poll_bits.Set("POLLOUT", static_cast<double>(POLLOUT));
  poll_bits.Set("POLLERR", static_cast<double>(POLLERR));
  poll_bits.Set("POLLHUP", static_cast<double>(POLLHUP));
  poll_bits.Set("POLLRDHUP", static_cast<double>(POLLRDHUP));
  exports.Set("pollFlags", poll_bits);

  // Index = kernel state number, from glibc's enum in <netinet/tcp.h>.
  Napi::Array states = Napi::Array::New(env);
  states.Set(static_cast<uint32_t>(TCP_ESTABLISHED), "ESTABLISHED");
  states.Set(static_cast<uint32_t>(TCP_SYN_SENT), "SYN_SENT");
  states.Set(static_cast<uint32_t>(TCP_SYN_RECV), "SYN_RECV");
  states.Set(static_cast<uint32_t>(TCP_FIN_WAIT1), "FIN_WAIT1");
  states.Set(static_cast<uint32_t>(TCP_FIN_WAIT2), "FIN_WAIT2");
  states.Set(static_cast<uint32_t>(TCP_TIME_WAIT), "TIME_WAIT");
  states.Set(static_cast<uint32_t>(TCP_CLOSE), "CLOSE");
  states.Set(static_cast<uint32_t>(TCP_CLOSE_WAIT), "CLOSE_WAIT");
  states.Set(static_cast<uint32_t>(TCP_LAST_ACK), "LAST_ACK");
  states.Set(static_cast<uint32_t>(TCP_LISTEN), "LISTEN");
  states.Set(static_cast<uint32_t>(TCP_CLOSING), "CLOSING");
  exports.Set("tcpStates", states);
}

}  // namespace sockstate

#endif  // defined(__linux__)
