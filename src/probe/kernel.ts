import * as net from 'node:net';
import { systemError } from '../errors';
import { flagsState } from './flags';
import { native, type NativeBinding, unsupported } from './native';
import { noFd, type Target, targetFd } from './target';
import { type ConnectionState, type TcpStateName, streamStatus, tcpStatus } from './state';
import { createTcpInfoDecoder, type TcpInfo } from './tcp-info';

/** The kernel-backed half of the API, built once around the binding. */
export interface KernelProbe {
  /** Number of int32 slots per probed fd. */
  readonly slots: number;
  /** Probes one fd. @throws SockstateError for a failed syscall. */
  state(fd: number): ConnectionState;
  /** Maps the probe slots at `raw[base…]` (filled by the binding) to a state. */
  stateAt(raw: Int32Array, base: number): ConnectionState;
  /** `struct tcp_info` for one fd. @throws SockstateError for a failed getsockopt. */
  tcpInfo(fd: number): TcpInfo;
  /**
   * How long the peer of the TCP connection last probed by {@link state} has
   * been silent, in ms: `min(tcpi_last_data_recv, tcpi_last_ack_recv)`, from
   * that same `TCP_INFO` read. Valid right after a `state()` of a TCP fd.
   */
  lastSilentMs(): number;
}

/** Binds the slot positions and flag bits the addon exports into closures. */
export function createKernelProbe(native: NativeBinding): KernelProbe {
  const S = native.probeSlots;
  const KIND = S.KIND;
  const STATE = S.STATE;
  const REVENTS = S.REVENTS;
  const UNREAD = S.UNREAD;
  const UNSENT = S.UNSENT;
  const UNACKED = S.UNACKED;
  const RETRANSMITS = S.RETRANSMITS;
  const PROBES = S.PROBES;
  const BACKOFF = S.BACKOFF;
  const LISTENING = S.LISTENING;
  const SYSCALL = S.SYSCALL;
  const LAST_DATA_RECV = S.LAST_DATA_RECV;
  const LAST_ACK_RECV = S.LAST_ACK_RECV;
  const KIND_TCP = native.probeKinds.TCP;
  const { POLLERR, POLLHUP, POLLRDHUP } = native.pollFlags;
  const names = native.tcpStates;
  const syscalls = native.probeSyscalls;
  const out = new Int32Array(S.COUNT);
  const decoder = createTcpInfoDecoder(native.tcpInfoLayout, names);

  function stateAt(raw: Int32Array, b: number): ConnectionState {
    const revents = raw[b + REVENTS]!;
    const pendingError = (revents & POLLERR) !== 0;
    const readClosed = (revents & POLLRDHUP) !== 0;
    if (raw[b + KIND] === KIND_TCP) {
      const tcpState = (names[raw[b + STATE]!] ?? 'UNKNOWN') as TcpStateName;
      const stalled = raw[b + RETRANSMITS]! > 0 || raw[b + PROBES]! > 0 || raw[b + BACKOFF]! > 0;
      return {
        status: tcpStatus(tcpState, pendingError, stalled),
        tcpState,
        pendingError,
        readClosed,
        unreadBytes: raw[b + UNREAD]!,
        unsentBytes: raw[b + UNSENT]!,
        unackedBytes: raw[b + UNACKED]!,
        stalled,
        source: 'kernel',
      };
    }
    return {
      status: streamStatus(raw[b + LISTENING] === 1, pendingError, (revents & POLLHUP) !== 0, readClosed),
      tcpState: null,
      pendingError,
      readClosed,
      unreadBytes: raw[b + UNREAD]!,
      unsentBytes: raw[b + UNSENT]!,
      unackedBytes: raw[b + UNACKED]!,
      stalled: false,
      source: 'kernel',
    };
  }

  function state(fd: number): ConnectionState {
    const rc = native.probe(fd, out);
    if (rc !== 0) throw systemError(rc, syscalls[out[SYSCALL]!] ?? 'getsockopt');
    return stateAt(out, 0);
  }

  function tcpInfo(fd: number): TcpInfo {
    const n = native.tcpInfo(fd, decoder.buffer);
    if (n < 0) throw systemError(n, 'getsockopt');
    return decoder.decode(n);
  }

  function lastSilentMs(): number {
    // u32 milliseconds carried as int32 bits.
    return Math.min(out[LAST_DATA_RECV]! >>> 0, out[LAST_ACK_RECV]! >>> 0);
  }

  return { slots: S.COUNT, state, stateAt, tcpInfo, lastSilentMs };
}

/** The one kernel probe of this process, or `null` without the addon. */
export const kernel: KernelProbe | null = native === null ? null : createKernelProbe(native);

/**
 * The connectionState() answer for any target: the kernel's when there is
 * an fd and the addon, else Node's flags. `what` names the caller in the
 * error a raw fd gets without the addon.
 */
export function stateOf(target: Target, what: string): ConnectionState {
  return stateOfFd(target, targetFd(target, 'target'), what);
}

/** {@link stateOf} for the fd (or sentinel) this same call read from `target`. */
export function stateOfFd(target: Target, fd: number, what: string): ConnectionState {
  if (fd >= 0 && kernel !== null) return withSocketFlags(target, kernel.state(fd));
  if (typeof target === 'number') throw unsupported(`${what} on a raw fd`);
  return flagsState(target as net.Socket | net.Server);
}

/**
 * The binding, for a call that needs both the addon and an fd read from
 * `target` in this same call; `what` names the call in the errors.
 *
 * @throws SockstateError `ERR_SOCKSTATE_UNSUPPORTED` without the addon,
 *   `ERR_SOCKSTATE_NO_FD` for a socket object without an fd.
 */
export function requireFd(target: Target, fd: number, what: string): NativeBinding {
  if (native === null) throw unsupported(what);
  if (fd < 0) throw noFd(what, target as net.Socket | net.Server, fd);
  return native;
}

/**
 * Adds to the kernel's answer for a socket object what a stream socket
 * without TCP (AF_UNIX) cannot show: our own `end()`. TCP shows it as
 * FIN_WAIT1/FIN_WAIT2; an AF_UNIX socket's poll bits do not change when we
 * shut down our sending side, so Node's `writableFinished` (set once the
 * shutdown is done) says it: `open` becomes `localClosed`, and
 * `peerClosed` (both directions shut) becomes `closed`.
 */
export function withSocketFlags(target: Target, state: ConnectionState): ConnectionState {
  if (state.tcpState !== null || !(target instanceof net.Socket) || !target.writableFinished) return state;
  if (state.status === 'open') return { ...state, status: 'localClosed' };
  if (state.status === 'peerClosed') return { ...state, status: 'closed' };
  return state;
}
