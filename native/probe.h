// Non-destructive probes of a socket fd. Every function takes the fd as a
// plain int for the duration of one call and returns 0 (or a value >= 0) on
// success and -errno on failure; nothing here keeps an fd or any state.
#ifndef SOCKSTATE_PROBE_H_
#define SOCKSTATE_PROBE_H_

#include <cstdint>

namespace sockstate {

// Positions in the Int32Array a probe fills; exported to JS as constants.
enum ProbeSlot : int {
  kSlotKind = 0,      // 0: TCP, 1: other stream socket (AF_UNIX)
  kSlotState,         // tcpi_state, or -1 without TCP
  kSlotRevents,       // poll(POLLIN|POLLOUT|POLLRDHUP) revents
  kSlotUnread,        // SIOCINQ, read only when POLLIN says there is some
  kSlotUnsent,        // bytes not yet sent, our FIN excluded
  kSlotUnacked,       // bytes sent and not acknowledged, our FIN excluded
  kSlotRetransmits,   // tcpi_retransmits
  kSlotProbes,        // tcpi_probes
  kSlotBackoff,       // tcpi_backoff
  kSlotInfoLength,    // bytes of tcp_info the kernel filled
  kSlotListening,     // 1 for a listening socket
  kSlotResult,        // 0 or -errno (the same value the probe returns)
  kSlotSyscall,       // on failure, which call failed: a ProbeSyscall
  kSlotLastDataRecv,  // tcpi_last_data_recv, ms (u32 bits), TCP only
  kSlotLastAckRecv,   // tcpi_last_ack_recv, ms (u32 bits), TCP only
  kProbeSlots
};

enum ProbeKind : int { kKindTcp = 0, kKindStream = 1 };

enum ProbeSyscall : int { kCallGetsockopt = 0, kCallPoll = 1, kCallIoctl = 2 };

// Fills out[0..kProbeSlots) for one fd. Syscalls: TCP_INFO and poll always;
// SIOCINQ only when poll reports readable, SIOCOUTQ only when segments are
// in flight. Returns 0 or -errno and stores the same in out[kSlotResult].
int ProbeFd(int fd, int32_t* out);

// poll(POLLIN|POLLOUT|POLLRDHUP, timeout 0): revents or -errno.
int PollFd(int fd);

}  // namespace sockstate

#endif  // SOCKSTATE_PROBE_H_
