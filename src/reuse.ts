/**
 * Can a pooled connection carry the next request? Answered synchronously,
 * without side effects, and as cheaply as the kernel allows.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { systemError } from './errors';
import { stateOfFd } from './kernel';
import { native } from './native';
import type { ConnectionState } from './state';
import { type Target, targetFd } from './target';

/**
 * Why a connection is or is not reusable.
 *
 * - `idle`: an open connection with nothing pending; reusable.
 * - `dataPending`: bytes the owner has not read are waiting, in the kernel
 *   or in Node's buffer: the peer sent something nobody asked for (an HTTP
 *   408, a database's goodbye packet, a late TLS record). Reported whether
 *   or not the peer has also closed, since Linux hands out queued data
 *   before the end of stream or a reset, and those bytes usually say why
 *   the connection is going away. `state.status` tells whether it is still
 *   open.
 * - `closed`: anything else that cannot carry a request: the peer closed
 *   or reset it, an error is pending, we ended or destroyed it, or it is
 *   not an established connection at all (still connecting, a listening
 *   server, never connected). `state.status` tells which.
 */
export type ReuseReason = 'idle' | 'dataPending' | 'closed';

/** The verdict of {@link checkReusable}. */
export interface ReuseVerdict {
  /** True only when `reason` is `'idle'`. */
  readonly reusable: boolean;
  /** Why; see {@link ReuseReason}. */
  readonly reason: ReuseReason;
  /**
   * The connection's state as the kernel reports it (`source: 'kernel'`),
   * or from Node's flags without the addon or an fd. Node's own flags can
   * rule a socket out before the kernel knows (right after `end()` the
   * kernel may still say ESTABLISHED); `reason` accounts for both.
   */
  readonly state: ConnectionState;
}

const flags = native?.pollFlags;
// Any of these in poll's revents rules reuse out: data or a FIN to read,
// a pending error, or a hang-up.
const NOT_IDLE = flags === undefined ? 0 : flags.POLLIN | flags.POLLRDHUP | flags.POLLERR | flags.POLLHUP;
const POLLOUT = flags === undefined ? 0 : flags.POLLOUT;

// Node's view: a socket it has ended, destroyed, not yet connected or seen
// the end of, or that holds bytes Node already read, is not reusable
// whatever the kernel says. This is what rules out FIN_WAIT after our own
// end(), which poll() reports exactly like an idle connection (POLLOUT).
function nodeAllows(socket: net.Socket): boolean {
  return !socket.destroyed && !socket.connecting && socket.writable && socket.readable && socket.readableLength === 0;
}

function verdict(state: ConnectionState, socket: net.Socket | null): ReuseVerdict {
  const nodeBuffered = socket === null ? 0 : socket.readableLength;
  if (
    state.status === 'open' &&
    !state.pendingError &&
    !state.readClosed &&
    state.unreadBytes === 0 &&
    (socket === null || nodeAllows(socket))
  ) {
    return { reusable: true, reason: 'idle', state };
  }
  // On TLS the kernel holds records sockstate cannot decrypt. In front of
  // the peer's FIN or RST they are most likely its close_notify, so they do
  // not make a closed connection "chatty"; while the connection is open
  // they may be a session ticket, a KeyUpdate or data, and count.
  const kernelBytes = state.source === 'kernel' ? state.unreadBytes : 0;
  const kernelCounts = !(socket instanceof tls.TLSSocket && state.readClosed);
  const pending = nodeBuffered > 0 || (kernelBytes > 0 && kernelCounts);
  return { reusable: false, reason: pending ? 'dataPending' : 'closed', state };
}

/**
 * Whether a connection can be handed to the next request: true only for an
 * `open` connection with no pending error, no closed read side and nothing
 * unread (in the kernel or already buffered by Node), that Node has not
 * ended, destroyed or still connecting.
 *
 * Made for the checkout path of a pool: on a `net.Socket` (or
 * `tls.TLSSocket`) with an fd it costs one non-destructive `poll(2)` plus
 * flags Node already keeps; revents of exactly POLLOUT with Node's flags in
 * order means idle, and any of POLLIN, POLLRDHUP, POLLERR or POLLHUP means
 * not. Only revents of 0 (still connecting, or a full send buffer) fall
 * back to the full {@link checkReusable}, as do raw fds and servers. It
 * always agrees with `checkReusable(target).reusable`.
 *
 * On a TLS socket, encrypted records waiting in the kernel count as unread
 * (see {@link checkReusable}).
 *
 * What no local check can see: a FIN or RST still in flight. A request
 * sent on a reusable connection can still meet a close the peer decided a
 * moment earlier; retry idempotent requests when `req.reusedSocket` is
 * true.
 *
 * Without the addon the answer comes from Node's flags, which lag the
 * kernel (a peer's FIN shows only once Node has read it).
 *
 * @param target - A net.Socket, tls.TLSSocket, listening net.Server, or fd.
 * @returns True when the connection is idle and open.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` for any other argument type.
 * @throws RangeError `ERR_OUT_OF_RANGE` for a number that cannot be an fd.
 * @throws SockstateError a system error from `poll` (or, on the full path,
 *   `getsockopt`/`ioctl`): `EBADF`, `ENOTSOCK`, `EOPNOTSUPP` for a raw fd
 *   the kernel rejects; `ERR_SOCKSTATE_UNSUPPORTED` for a raw fd without
 *   the addon.
 */
export function isReusable(target: Target): boolean {
  const fd = targetFd(target, 'target');
  if (native !== null && fd >= 0 && target instanceof net.Socket) {
    if (!nodeAllows(target)) return false;
    const revents = native.poll(fd);
    if (revents < 0) throw systemError(revents, 'poll');
    if ((revents & NOT_IDLE) !== 0) return false;
    if ((revents & POLLOUT) !== 0) return true;
  }
  return verdictOf(target, fd).reusable;
}

/**
 * {@link isReusable} with its reason and the connection's state, so a pool
 * can tell a stale connection (`'closed'`) from one whose peer sent
 * something unexpected (`'dataPending'`: an HTTP 408, a database's goodbye
 * packet), and log or read what it said.
 *
 * Mapping: `idle` for an open connection with nothing pending; otherwise
 * `dataPending` whenever unread bytes wait (even if the peer also closed
 * or reset the connection: Linux delivers those bytes first);
 * otherwise `closed`. See {@link ReuseReason}.
 *
 * TLS: the kernel's unread bytes on a `tls.TLSSocket` are encrypted
 * records that only the TLS layer can read. While the connection is open
 * they count as `dataPending`: that may be application data, but also a
 * TLS 1.3 NewSessionTicket or KeyUpdate that arrived while the event loop
 * was busy. Such a record never makes the verdict `closed`, and Node's TLS
 * layer consumes it as soon as the loop turns, after which the socket is
 * `idle` again. Once the peer's FIN or RST has arrived, the records before
 * it (most likely its close_notify alert) are not counted and the verdict
 * is `closed`. Bytes Node has already decrypted (`readableLength`) always
 * count.
 *
 * Costs `TCP_INFO` plus `poll(2)` (and `SIOCINQ` only when there is
 * something to count); use {@link isReusable} when only the boolean is
 * needed.
 *
 * @param target - A net.Socket, tls.TLSSocket, listening net.Server, or fd.
 * @returns A new {@link ReuseVerdict}.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError `ERR_OUT_OF_RANGE`
 *   for a bad argument.
 * @throws SockstateError a system error for a raw fd the kernel rejects
 *   (`EBADF`, `ENOTSOCK`, `EOPNOTSUPP`); `ERR_SOCKSTATE_UNSUPPORTED` for a
 *   raw fd without the addon.
 */
export function checkReusable(target: Target): ReuseVerdict {
  return verdictOf(target, targetFd(target, 'target'));
}

function verdictOf(target: Target, fd: number): ReuseVerdict {
  return verdict(stateOfFd(target, fd, 'checkReusable()'), target instanceof net.Socket ? target : null);
}
