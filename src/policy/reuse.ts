/**
 * Can a pooled connection carry the next request? Answered synchronously,
 * without side effects, and as cheaply as the kernel allows.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { invalidArgType, invalidArgValue, outOfRange, systemError } from '../errors';
import { kernel, stateOfFd } from '../probe/kernel';
import { native } from '../probe/native';
import type { ConnectionState } from '../probe/state';
import { type Target, targetFd, tcpSocketFd } from '../probe/target';

/**
 * What bytes waiting unread on an idle connection mean, which depends on
 * the protocol spoken over it.
 *
 * - `'goodbye'` (the default): the peer never speaks unasked except to say
 *   why it is closing, as an HTTP/1.1 server (a 408 before its FIN) or a
 *   MySQL server (an error packet before it closes). Unread bytes rule
 *   reuse out (reason `dataPending`) even before the FIN arrives.
 * - `'message'`: the peer sends messages unasked on healthy connections,
 *   as PostgreSQL does (NotificationResponse after `LISTEN`,
 *   NoticeResponse, ParameterStatus) and Redis does (pub/sub, RESP3
 *   push). Unread bytes on an open connection, with no error pending and
 *   the read side not closed, are for the owner to read: the connection is
 *   reusable (reason `idle`, `state.unreadBytes` > 0). The server's real
 *   goodbye still rules it out, since it comes with a FIN or a reset.
 */
export type UnreadData = 'goodbye' | 'message';

/**
 * Why a connection is or is not reusable.
 *
 * - `idle`: an open connection with nothing pending; reusable. Under
 *   `unreadData: 'message'` bytes may be waiting for the owner to read
 *   (`state.unreadBytes`).
 * - `dataPending`: bytes the owner has not read are waiting, in the kernel
 *   or in Node's buffer: the peer sent something nobody asked for (an HTTP
 *   408, a database's goodbye packet, a late TLS record). Reported whether
 *   or not the peer has also closed, since Linux hands out queued data
 *   before the end of stream or a reset, and those bytes usually say why
 *   the connection is going away. `state.status` tells whether it is still
 *   open. Under `unreadData: 'message'` only once the connection is no
 *   longer open: the bytes then came before its FIN or reset.
 * - `closed`: anything else that cannot carry a request: the peer closed
 *   or reset it, an error is pending, we ended or destroyed it, or it is
 *   not an established connection at all (still connecting, a listening
 *   server, never connected). `state.status` tells which.
 * - `stalled` (only with {@link ReuseOptions}, unless `allowStalled`): an
 *   open connection on which the kernel is retransmitting, probing or
 *   backing off, or that still holds bytes it could not send because the
 *   peer stopped reading. The next request would queue behind them or be
 *   lost with the connection.
 * - `silent` (only with `maxSilentMs`): an open connection whose peer has
 *   sent nothing, not even an ACK, for longer than `maxSilentMs` by the
 *   kernel's clocks: what a connection that a NAT gateway or firewall
 *   silently forgot looks like.
 */
export type ReuseReason = 'idle' | 'dataPending' | 'closed' | 'stalled' | 'silent';

/**
 * Stricter reuse rules, for pools that can afford one `TCP_INFO` read per
 * checkout. Passing any options object (even `{}`) takes the full path and
 * rules out `stalled` connections (unless `allowStalled`); without options
 * the check looks at neither retransmissions nor silence and
 * {@link isReusable} stays one `poll(2)`.
 *
 * `unreadData` changes what unread bytes mean ({@link UnreadData}); set in
 * an options object, it comes with that object's other rules
 * (`{ unreadData: 'message', allowStalled: true }` is the plain check under
 * the `'message'` rule, one `poll(2)` again).
 *
 * Both rules apply to TCP connections answered by the kernel. An AF_UNIX
 * connection has no retransmissions and no network in between that could
 * drop it silently, and an answer from Node's flags (no addon, no fd) has
 * no kernel clocks: for those, the verdict is the plain one, and
 * `state.tcpState` / `state.source` say so.
 */
export interface ReuseOptions {
  /**
   * Not reusable (reason `'silent'`) when the peer has sent nothing for
   * longer than this many milliseconds: no data and no ACK, so a keepalive
   * ACK counts as a sign of life. Measured as the kernel's keepalive timer
   * measures idleness, `min(tcpi_last_data_recv, tcpi_last_ack_recv)`,
   * which stays exact when the event loop was busy and a pool's own idle
   * timer could not fire. An integer from 0 to 4294967295; unset: no bound.
   */
  readonly maxSilentMs?: number;
  /**
   * Whether a `stalled` connection is reusable. Default `false`: a
   * connection the kernel is retransmitting on (or probing a zero window
   * or keepalive on, or backing off), or that holds unsent bytes, is
   * reason `'stalled'`.
   */
  readonly allowStalled?: boolean;
  /**
   * What bytes waiting unread mean ({@link UnreadData}): `'goodbye'`
   * (default, right for HTTP/1.1 and MySQL) or `'message'` (for protocols
   * whose servers speak unasked, such as PostgreSQL and Redis).
   */
  readonly unreadData?: UnreadData;
}

/** Validated {@link ReuseOptions}. */
export interface ReusePolicy {
  /** The bound on the peer's silence in ms, or undefined for none. */
  readonly maxSilentMs: number | undefined;
  /** Whether `stalled` connections are reusable. */
  readonly allowStalled: boolean;
  /** What bytes waiting unread mean. */
  readonly unreadData: UnreadData;
}

const MAX_SILENT_MS = 0xffffffff;

/**
 * Validates {@link ReuseOptions}, reading only the caller's own
 * properties, into a {@link ReusePolicy}; `null` for `undefined` (the
 * plain check) when `unreadData` is `'goodbye'`. Guards call it once when
 * they are set up.
 *
 * @param options - The options, or undefined.
 * @param name - The argument's name for error messages (`'options'`,
 *   `'options.reuse'`).
 * @param unreadData - What unread data means when `options` does not say:
 *   an adapter's protocol. Without options and with `'message'`, the
 *   policy is the plain check under that rule (as cheap: one `poll(2)`).
 * @throws TypeError `ERR_INVALID_ARG_TYPE` for options that are not an
 *   object, a `maxSilentMs` that is not a number, an `allowStalled`
 *   that is not a boolean or an `unreadData` that is not a string;
 *   `ERR_INVALID_ARG_VALUE` for an `unreadData` other than `'goodbye'` or
 *   `'message'`.
 * @throws RangeError `ERR_OUT_OF_RANGE` for a `maxSilentMs` that is not an
 *   integer from 0 to 4294967295.
 */
export function reusePolicy(options: unknown, name: string, unreadData: UnreadData = 'goodbye'): ReusePolicy | null {
  if (options === undefined) return unreadData === 'goodbye' ? null : { maxSilentMs: undefined, allowStalled: true, unreadData };
  if (options === null || typeof options !== 'object') throw invalidArgType(name, 'of type object', options);
  const own = (key: string): unknown => (Object.prototype.hasOwnProperty.call(options, key) ? (options as Record<string, unknown>)[key] : undefined);
  const maxSilentMs = own('maxSilentMs');
  if (maxSilentMs !== undefined) {
    if (typeof maxSilentMs !== 'number') throw invalidArgType(`${name}.maxSilentMs`, 'of type number', maxSilentMs);
    if (!Number.isInteger(maxSilentMs) || maxSilentMs < 0 || maxSilentMs > MAX_SILENT_MS) {
      throw outOfRange(`${name}.maxSilentMs`, `an integer >= 0 and <= ${MAX_SILENT_MS}`, maxSilentMs);
    }
  }
  const allowStalled = own('allowStalled');
  if (allowStalled !== undefined && typeof allowStalled !== 'boolean') {
    throw invalidArgType(`${name}.allowStalled`, 'of type boolean', allowStalled);
  }
  const given = own('unreadData');
  if (given !== undefined) {
    if (typeof given !== 'string') throw invalidArgType(`${name}.unreadData`, 'of type string', given);
    if (given !== 'goodbye' && given !== 'message') {
      throw invalidArgValue(`${name}.unreadData`, `must be 'goodbye' or 'message'. Received ${JSON.stringify(given)}`);
    }
  }
  return { maxSilentMs, allowStalled: allowStalled === true, unreadData: (given as UnreadData | undefined) ?? unreadData };
}

// A policy that adds no rule needing the kernel's clocks: its verdict is
// the plain one under its unreadData, and a poll(2) can answer it.
function plainRule(policy: ReusePolicy | null): UnreadData | null {
  if (policy === null) return 'goodbye';
  return policy.allowStalled && policy.maxSilentMs === undefined ? policy.unreadData : null;
}

/** The verdict of {@link checkReusable}. */
export interface ReuseVerdict {
  /** True only when `reason` is `'idle'`. */
  readonly reusable: boolean;
  /** Why; see {@link ReuseReason}. */
  readonly reason: ReuseReason;
  /**
   * How long the peer has been silent, in ms, by the kernel's clocks: set
   * only when `maxSilentMs` was given and the kernel could measure it.
   */
  readonly silentMs?: number;
  /**
   * The connection's state as the kernel reports it (`source: 'kernel'`),
   * or from Node's flags without the addon or an fd. Node's own flags can
   * rule a socket out before the kernel knows (right after `end()` the
   * kernel may still say ESTABLISHED); `reason` accounts for both.
   */
  readonly state: ConnectionState;
}

const flags = native?.pollFlags;
// Any of these in poll's revents rules reuse out: a FIN to read, a pending
// error, or a hang-up; and under 'goodbye', data to read.
const NOT_OPEN = flags === undefined ? 0 : flags.POLLRDHUP | flags.POLLERR | flags.POLLHUP;
const NOT_IDLE = flags === undefined ? 0 : NOT_OPEN | flags.POLLIN;
const POLLOUT = flags === undefined ? 0 : flags.POLLOUT;

// Node's view: a socket it has ended, destroyed, not yet connected or seen
// the end of, or (under 'goodbye') that holds bytes Node already read, is
// not reusable whatever the kernel says. This is what rules out FIN_WAIT
// after our own end(), which poll() reports exactly like an idle
// connection (POLLOUT).
function nodeAllows(socket: net.Socket, unreadData: UnreadData): boolean {
  return (
    !socket.destroyed &&
    !socket.connecting &&
    socket.writable &&
    socket.readable &&
    (unreadData === 'message' || socket.readableLength === 0)
  );
}


function verdict(state: ConnectionState, socket: net.Socket | null, unreadData: UnreadData): ReuseVerdict {
  const nodeBuffered = socket === null ? 0 : socket.readableLength;
  if (
    state.status === 'open' &&
    !state.pendingError &&
    !state.readClosed &&
    (unreadData === 'message' || state.unreadBytes === 0) &&
    (socket === null || nodeAllows(socket, unreadData))
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
 * back to the full {@link checkReusable}, as do raw fds, servers, AF_UNIX
 * sockets and anything else that is not a TCP handle (a `net.Socket` over
 * a FIFO, a pipe or a terminal: poll(2) cannot tell those from a
 * connection, the full probe can, and fails with `ENOTSOCK`). It always
 * agrees with `checkReusable(target, options).reusable`: the same answer
 * or the same error.
 *
 * With `options` it takes the full path, one `TCP_INFO` read more, and
 * also rules out `stalled` and (with `maxSilentMs`) `silent` connections;
 * see {@link ReuseOptions}. Under `unreadData: 'message'`, unread bytes
 * (POLLIN, or Node's buffer) do not rule an open connection out.
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
 * @param options - Stricter rules ({@link ReuseOptions}); omit for the
 *   plain one-`poll` check.
 * @returns True when the connection is idle and open.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` for any other argument type,
 *   or bad options (see {@link ReuseOptions}); `ERR_INVALID_ARG_VALUE`
 *   for an `unreadData` that is not `'goodbye'` or `'message'`.
 * @throws RangeError `ERR_OUT_OF_RANGE` for a number that cannot be an fd,
 *   or a `maxSilentMs` out of range.
 * @throws SockstateError a system error from `poll` (or, on the full path,
 *   `getsockopt`/`ioctl`): `EBADF`, `ENOTSOCK`, `EOPNOTSUPP` for a raw fd
 *   the kernel rejects, `ENOTSOCK` for a socket object over something
 *   that is not a socket; `ERR_SOCKSTATE_UNSUPPORTED` for a raw fd without
 *   the addon.
 */
export function isReusable(target: Target, options?: ReuseOptions): boolean {
  // The pools' path first: a connected TCP socket and no options.
  if (options === undefined) {
    const quick = pollAnswer(target, 'goodbye');
    if (quick !== undefined) return quick;
  }
  const fd = targetFd(target, 'target');
  return verdictOf(target, fd, reusePolicy(options, 'options')).reusable;
}

// The answer of one poll(2), for a connected TCP socket that Node's flags
// allow, under a rule needing no kernel clocks; undefined when poll alone
// cannot answer (another kind of socket or fd, no addon, revents of 0)
// and the full probe must.
function pollAnswer(target: Target, unreadData: UnreadData): boolean | undefined {
  if (native === null || !(target instanceof net.Socket) || !nodeAllows(target, unreadData)) return undefined;
  const fd = tcpSocketFd(target);
  if (fd < 0) return undefined;
  const revents = native.poll(fd);
  if (revents < 0) throw systemError(revents, 'poll');
  if ((revents & (unreadData === 'message' ? NOT_OPEN : NOT_IDLE)) !== 0) return false;
  if ((revents & POLLOUT) !== 0) return true;
  return undefined;
}

// isReusable's answer under a validated policy: one poll(2) when the
// policy adds no rule needing TCP_INFO.
function reusableOf(target: Target, policy: ReusePolicy | null): boolean {
  const unreadData = plainRule(policy);
  if (unreadData !== null) {
    const quick = pollAnswer(target, unreadData);
    if (quick !== undefined) return quick;
  }
  return verdictOf(target, targetFd(target, 'target'), policy).reusable;
}

/**
 * {@link isReusable} with its reason and the connection's state, so a pool
 * can tell a stale connection (`'closed'`) from one whose peer sent
 * something unexpected (`'dataPending'`: an HTTP 408, a database's goodbye
 * packet), and log or read what it said.
 *
 * Mapping: `idle` for an open connection with nothing pending (under
 * `unreadData: 'message'`, for an open connection whatever it holds
 * unread); otherwise `dataPending` whenever unread bytes wait (even if
 * the peer also closed or reset the connection: Linux delivers those
 * bytes first); otherwise `closed`. With `options`, an open connection
 * that is otherwise idle is `stalled` or `silent` by the rules of
 * {@link ReuseOptions}. See {@link ReuseReason}.
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
 * something to count; `maxSilentMs` reads its clocks from the same
 * `TCP_INFO`); use
 * {@link isReusable} when only the boolean is needed.
 *
 * @param target - A net.Socket, tls.TLSSocket, listening net.Server, or fd.
 * @param options - Stricter rules ({@link ReuseOptions}); omit for the
 *   plain check.
 * @returns A new {@link ReuseVerdict}.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` /
 *   RangeError `ERR_OUT_OF_RANGE` for a bad argument or bad options.
 * @throws SockstateError a system error for a raw fd the kernel rejects
 *   (`EBADF`, `ENOTSOCK`, `EOPNOTSUPP`) or a socket object over something
 *   that is not a socket (`ENOTSOCK`); `ERR_SOCKSTATE_UNSUPPORTED` for a
 *   raw fd without the addon.
 */
export function checkReusable(target: Target, options?: ReuseOptions): ReuseVerdict {
  const fd = targetFd(target, 'target');
  return verdictOf(target, fd, reusePolicy(options, 'options'));
}

/**
 * {@link checkReusable} with options already validated by
 * {@link reusePolicy}, for guards that check on every checkout.
 */
export function checkReusableWith(target: Target, policy: ReusePolicy | null): ReuseVerdict {
  return verdictOf(target, targetFd(target, 'target'), policy);
}

/**
 * The verdict's reason only, as cheaply as {@link isReusable}: without a
 * policy a reusable connection costs one `poll(2)`, and only a connection
 * that is not reusable pays for the full probe that names the reason.
 * For guards, which need the reason only when they evict.
 */
export function reuseReasonWith(target: Target, policy: ReusePolicy | null): ReuseReason {
  const unreadData = plainRule(policy);
  if (unreadData !== null && pollAnswer(target, unreadData) === true) return 'idle';
  return verdictOf(target, targetFd(target, 'target'), policy).reason;
}

/** {@link isReusable} with options already validated by {@link reusePolicy}. */
export function isReusableWith(target: Target, policy: ReusePolicy | null): boolean {
  return reusableOf(target, policy);
}

function verdictOf(target: Target, fd: number, policy: ReusePolicy | null): ReuseVerdict {
  const state = stateOfFd(target, fd, 'checkReusable()');
  const plain = verdict(state, target instanceof net.Socket ? target : null, policy?.unreadData ?? 'goodbye');
  if (policy === null || !plain.reusable || state.source !== 'kernel' || state.tcpState === null) return plain;
  if (!policy.allowStalled && (state.stalled || state.unsentBytes > 0)) {
    return { reusable: false, reason: 'stalled', state };
  }
  if (policy.maxSilentMs === undefined) return plain;
  // The kernel's keepalive timer measures idleness the same way
  // (keepalive_time_elapsed()): the later of the last data and the last
  // ACK from the peer, from the probe's own TCP_INFO read just above.
  const silentMs = kernel!.lastSilentMs();
  if (silentMs > policy.maxSilentMs) return { reusable: false, reason: 'silent', silentMs, state };
  return { reusable: true, reason: 'idle', silentMs, state };
}
