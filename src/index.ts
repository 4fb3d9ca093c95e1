/**
 * sockstate: what state a TCP connection is really in, read synchronously
 * and without side effects from the kernel.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { types } from 'node:util';
import { codedError, SockstateError, systemError } from './errors';
import { kernel, requireFd, stateOf } from './probe/kernel';
import { loadError } from './probe/native';
import { type ConnectionState, neverEstablished } from './probe/state';
import { type Target, targetFd } from './probe/target';
import type { TcpInfo } from './probe/tcp-info';

export { Agent, HttpsAgent } from './integrations/agent';
export type { AgentOptions, AgentReuseOptions, AgentTcpOptions, HttpsAgentOptions } from './integrations/agent';
export { CONNECTION_CHANNEL, REPLAY_CHANNEL, REUSE_CHECK_CHANNEL } from './policy/channel';
export type { ConnectionMessage, ReplayMessage, ReuseCheckMessage } from './policy/channel';
export { isReplaySafe } from './policy/replay';
export { SockstateError } from './errors';
export { probeMany } from './probe/probe-many';
export type { ProbeFailure, ProbeManyEntry, ProbedState } from './probe/probe-many';
export { probeManyAsync } from './probe/sweep';
export {
  getKeepAlive,
  getUserTimeout,
  KEEPALIVE_MAX_COUNT,
  KEEPALIVE_MAX_SECONDS,
  setKeepAlive,
  setUserTimeout,
  USER_TIMEOUT_MAX_MS,
} from './probe/sockopt';
export type { KeepAliveOptions, KeepAliveSettings } from './probe/sockopt';
export { checkReusable, isReusable } from './policy/reuse';
export type { ReuseOptions, ReuseReason, ReuseVerdict, UnreadData } from './policy/reuse';
export { ConnectionWatcher, watch } from './probe/watch';
export type { ConnectionWatcherEvents, WatchEnd, WatchEndReason, WatchOptions } from './probe/watch';
export type { SockstateErrorCode, SystemErrorCode } from './errors';
export type { ConnectionState, ConnectionStatus, StateSource, TcpStateName } from './probe/state';
export type { Target } from './probe/target';
export type { TcpInfo } from './probe/tcp-info';

/**
 * True when the native probe is loaded: on Linux, a build from source in
 * build/Release or else the prebuilt binary shipped for the platform. When
 * false, {@link connectionState} answers from socket flags
 * (`source: 'flags'`) and the kernel-only calls throw
 * `ERR_SOCKSTATE_UNSUPPORTED`.
 */
export const supported: boolean = kernel !== null;

/**
 * Why the native probe is not loaded, or `null` when it is: one or two
 * sentences saying what is missing and the one command that fixes it (the
 * same text ends every `ERR_SOCKSTATE_UNSUPPORTED` message, whose
 * `cause.paths` lists the folders searched).
 */
export const unsupportedReason: string | null = loadError === null ? null : loadError.message;

/**
 * The error {@link takeSocketError} returns: a system error taken from
 * `SO_ERROR`.
 */
export type SocketError = SockstateError & { readonly errno: number; readonly syscall: 'getsockopt' };

/**
 * What state a connection is in, from the kernel, synchronously. Never
 * destructive: it reads `TCP_INFO` and `poll(2)` (plus `SIOCINQ`/`SIOCOUTQ`
 * only when there is something to count) and never `SO_ERROR`, so the
 * socket's owner still sees every error and event it would have seen.
 *
 * A socket without an fd (destroyed, connect not yet issued, TLS over a JS
 * stream) and every socket when {@link supported} is false are answered
 * from Node's flags, with `source: 'flags'`.
 *
 * An AF_UNIX socket object after its own `end()` reads `localClosed`
 * (Node's `writableFinished`; the kernel's poll bits do not show it).
 *
 * @param target - A net.Socket, tls.TLSSocket, listening net.Server, or fd.
 * @returns A new {@link ConnectionState} object.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` for any other argument type;
 *   `ERR_INVALID_ARG_VALUE` for a net.Socket that was never constructed
 *   (`Object.create(net.Socket.prototype)`).
 * @throws RangeError `ERR_OUT_OF_RANGE` for a number, or a socket's
 *   `_handle.fd`, that cannot be an fd.
 * @throws SockstateError a system error for an fd the kernel rejects:
 *   `EBADF` (closed), `ENOTSOCK` (not a socket), `EOPNOTSUPP` (a datagram
 *   socket); `ERR_SOCKSTATE_UNSUPPORTED` for a raw fd without the addon.
 */
export function connectionState(target: Target): ConnectionState {
  return stateOf(target, 'connectionState()');
}

/**
 * The kernel's `struct tcp_info` for a TCP socket, every field up to the
 * Linux 6.18 layout; fields the running kernel does not fill are undefined.
 *
 * @param target - A net.Socket, tls.TLSSocket, listening net.Server, or fd.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError `ERR_OUT_OF_RANGE`
 *   for a bad argument.
 * @throws SockstateError `ERR_SOCKSTATE_NO_FD` for a socket without an fd
 *   (a cluster worker's round-robin server included);
 *   `ERR_SOCKSTATE_UNSUPPORTED` without the addon; a system error from
 *   `getsockopt`: `EOPNOTSUPP` for AF_UNIX and UDP sockets (IPv6 too,
 *   where the kernel says ENOPROTOOPT), `ENOTSOCK`, `EBADF`.
 */
export function tcpInfo(target: Target): TcpInfo {
  const fd = targetFd(target, 'target');
  requireFd(target, fd, 'tcpInfo()');
  // The probe exists whenever the binding does.
  return kernel!.tcpInfo(fd);
}

// A raw fd has no `connecting` flag: ask the kernel. Still in the
// handshake, or closed by an error before the handshake completed (a
// refused or unreachable connect its owner has not yet seen): both are
// connects whose outcome the error is. A datagram socket (EOPNOTSUPP from
// the probe) has no connection to be pending.
function rawFdConnecting(fd: number): boolean {
  let state: ConnectionState;
  try {
    state = kernel!.state(fd);
  } catch (err) {
    if (err instanceof SockstateError && err.code === 'EOPNOTSUPP') return false;
    throw err;
  }
  if (state.status === 'connecting') return true;
  if (state.tcpState !== 'CLOSE' || !state.pendingError) return false;
  return neverEstablished(kernel!.tcpInfo(fd));
}

function connectingError(): SockstateError {
  return codedError(
    'ERR_SOCKSTATE_CONNECTING',
    'takeSocketError(): the socket is still connecting; taking its error now would make its owner see a connect',
  );
}

// Bytes the owner has yet to receive: in the kernel, and already read by
// Node into the stream's buffer (for TLS, decrypted and not yet consumed).
function unreadBytes(socket: net.Socket, fd: number): number {
  return kernel!.state(fd).unreadBytes + socket.readableLength;
}

/**
 * The one destructive call, named so: reads **and clears** the socket's
 * pending error (`SO_ERROR`). Returns `null` when none was pending.
 *
 * On a `net.Socket`, an error that closed the connection (an RST, a
 * timeout) is handed back: the socket is destroyed with it, so its
 * `'error'` listeners still receive it. A soft error on a connection that
 * still works (an ICMP error) is returned and the socket left alone; the
 * kernel would otherwise have reported it only if the connection later
 * timed out (then as that error instead of ETIMEDOUT).
 *
 * Refused, before `SO_ERROR` is touched, wherever taking the error would
 * cost the owner something: a socket that is still connecting (its owner
 * would see a connect instead of the failure: a `net.Socket` by its flag,
 * a raw fd when it is in the handshake or was closed by an error before
 * the handshake completed); a closed connection whose received bytes are
 * still unread, in the kernel or in Node's buffer (destroying it would
 * discard them; left alone, Node delivers them, then `'end'` on Node 20
 * and 22 or the error on Node 24+); and a socket
 * whose owner cannot be handed the error (an HTTP/2 session's `socket`, a
 * Proxy that forbids `destroy`).
 *
 * @param target - A net.Socket, tls.TLSSocket, listening net.Server, or fd.
 * @returns The pending error as a {@link SocketError}, or null.
 * @throws SockstateError `ERR_SOCKSTATE_CONNECTING` for a connecting socket;
 *   `ERR_SOCKSTATE_UNREAD_DATA` for a closed connection with unread bytes;
 *   `ERR_SOCKSTATE_CANNOT_HAND_BACK` for a Proxy of a socket;
 *   `ERR_SOCKSTATE_NO_FD` for a socket without an fd;
 *   `ERR_SOCKSTATE_UNSUPPORTED` without the addon; a system error (`EBADF`,
 *   `ENOTSOCK`) from `getsockopt`.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError `ERR_OUT_OF_RANGE`
 *   for a bad argument.
 */
export function takeSocketError(target: Target): SocketError | null {
  // Before anything is read through it: a Proxy (an HTTP/2 session's
  // socket) decides what destroy() does, and HTTP/2's throws.
  if (typeof target === 'object' && target !== null && types.isProxy(target) && target instanceof net.Socket) {
    throw codedError(
      'ERR_SOCKSTATE_CANNOT_HAND_BACK',
      "takeSocketError(): the target is a Proxy of a socket (an HTTP/2 session's socket): its owner could not be handed the error",
    );
  }
  const fd = targetFd(target, 'target');
  if (target instanceof net.Socket && target.connecting) throw connectingError();
  const native = requireFd(target, fd, 'takeSocketError()');
  if (typeof target === 'number' && rawFdConnecting(fd)) throw connectingError();
  const { POLLHUP } = native.pollFlags;
  if (target instanceof net.Socket) {
    const revents = native.poll(fd);
    if (revents < 0) throw systemError(revents, 'poll');
    if ((revents & POLLHUP) !== 0) {
      const unread = unreadBytes(target, fd);
      if (unread > 0) {
        throw codedError(
          'ERR_SOCKSTATE_UNREAD_DATA',
          `takeSocketError(): the connection is closed and ${unread} received bytes are unread; handing back its error would destroy the socket and discard them`,
        );
      }
    }
  }
  const rc = native.soError(fd);
  if (rc < 0) throw systemError(rc, 'getsockopt');
  if (rc === 0) return null;
  const err = systemError(-rc, 'getsockopt') as SocketError;
  if (!(target instanceof net.Socket)) return err;
  // From here on the error is taken: nothing may throw. A hard error closes
  // the connection (POLLHUP); a soft one, such as an ICMP error on a
  // connection that still works, does not, and must not cost the owner a
  // live socket. Bytes that arrived since the check above are left for the
  // owner, who then reads them and an end, as Node 20 and 22 do without
  // this call (Node 24+ would have read the error after them).
  let hardError = true;
  try {
    const revents = native.poll(fd);
    hardError = revents < 0 || ((revents & POLLHUP) !== 0 && unreadBytes(target, fd) === 0);
  } catch {
    // Only a failed probe lands here (the fd cannot change within this
    // synchronous call); destroying hands the error back all the same.
  }
  if (hardError) {
    try {
      target.destroy(err);
    } catch (destroyErr) {
      process.emitWarning(
        `takeSocketError(): took ${err.code} but the socket's destroy() threw (${String(destroyErr)}); the error is only returned`,
        { code: 'SOCKSTATE_HAND_BACK_FAILED' },
      );
    }
  }
  return err;
}

// The module itself, so that `import sockstate from 'sockstate'` works from
// TypeScript or Babel compiled to CommonJS as it does from native ESM.
import * as self from '.';

/** The whole API as one object: `import sockstate from 'sockstate'`. */
const sockstate: Omit<typeof self, 'default'> = self;
export default sockstate;
