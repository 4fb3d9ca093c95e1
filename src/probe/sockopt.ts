/**
 * Dead-peer detection: TCP keepalive tuning (SO_KEEPALIVE, TCP_KEEPIDLE,
 * TCP_KEEPINTVL, TCP_KEEPCNT) and TCP_USER_TIMEOUT, set and read back
 * through the addon.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { invalidArgType, invalidArgValue, outOfRange, systemError } from '../errors';
import { requireFd } from './kernel';
import { type Target, targetFd } from './target';

/** Options for {@link setKeepAlive}. Omitted tunables keep their current value. */
export interface KeepAliveOptions {
  /** Turn keepalive on (default) or off. When false, no tunable may be given. */
  readonly enable?: boolean;
  /** Idle time before the first probe (TCP_KEEPIDLE): whole seconds in ms, 1000 … 32767000. */
  readonly idleMs?: number;
  /** Time between unanswered probes (TCP_KEEPINTVL): whole seconds in ms, 1000 … 32767000. */
  readonly intervalMs?: number;
  /** Unanswered probes before the connection is dropped with ETIMEDOUT (TCP_KEEPCNT): 1 … 127. */
  readonly count?: number;
}

/** What {@link getKeepAlive} reads back from the kernel. */
export interface KeepAliveSettings {
  /** SO_KEEPALIVE is on. */
  readonly enabled: boolean;
  /** TCP_KEEPIDLE in ms (the system default, 7200000, unless set). */
  readonly idleMs: number;
  /** TCP_KEEPINTVL in ms (the system default, 75000, unless set). */
  readonly intervalMs: number;
  /** TCP_KEEPCNT (the system default, 9, unless set). */
  readonly count: number;
}

/** Largest TCP_KEEPIDLE / TCP_KEEPINTVL the kernel accepts, in seconds (MAX_TCP_KEEPIDLE). */
export const KEEPALIVE_MAX_SECONDS = 32767;
/** Largest TCP_KEEPCNT the kernel accepts (MAX_TCP_KEEPCNT). */
export const KEEPALIVE_MAX_COUNT = 127;
/** Largest TCP_USER_TIMEOUT in ms (the kernel takes a non-negative int). */
export const USER_TIMEOUT_MAX_MS = 0x7fffffff;

const readBack = new Int32Array(4);

// ms that must be a whole number of seconds in 1 … KEEPALIVE_MAX_SECONDS;
// returns seconds, or 0 (unchanged) when omitted.
function keepAliveSeconds(value: unknown, name: string): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value % 1000 !== 0 || value < 1000 || value > KEEPALIVE_MAX_SECONDS * 1000) {
    throw outOfRange(name, `a whole number of seconds in ms, >= 1000 and <= ${KEEPALIVE_MAX_SECONDS * 1000}`, value);
  }
  return value / 1000;
}

/**
 * Turns TCP keepalive on or off and tunes it, so that a peer that vanished
 * without a FIN or RST (power loss, a cut link, a NAT that forgot the flow)
 * is detected on an idle connection: after `idleMs` of silence the kernel
 * sends a probe every `intervalMs`, and after `count` unanswered probes it
 * drops the connection; the socket's owner then gets `'error'` with
 * `ETIMEDOUT`. The tunables are set before SO_KEEPALIVE, so the first timer
 * already uses them. Data in flight is governed by retransmission instead:
 * see {@link setUserTimeout}.
 *
 * The kernel counts these in seconds, so each duration must be a whole
 * number of seconds, given in ms.
 *
 * On a `net.Socket`, Node's own record of the keepalive it applied is
 * updated too, so that a later `socket.setKeepAlive(...)` takes effect
 * instead of being skipped as already done. Given a raw fd, sockstate
 * cannot reach that record: call Node's `socket.setKeepAlive()` on the
 * socket object, or sockstate's with the socket rather than its fd.
 *
 * @param target - A connected net.Socket / tls.TLSSocket, or a TCP fd.
 * @param options - See {@link KeepAliveOptions}; `{}` enables keepalive with
 *   the current (by default the system's) tunables.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` for a bad target or option type;
 *   `ERR_INVALID_ARG_VALUE` for a tunable given with `enable: false`.
 * @throws RangeError `ERR_OUT_OF_RANGE` for a duration that is not a whole
 *   number of seconds in 1 … 32767 s, or a count outside 1 … 127.
 * @throws SockstateError `ERR_SOCKSTATE_NO_FD` for a socket without an fd,
 *   `ERR_SOCKSTATE_UNSUPPORTED` without the addon, or a system error with
 *   `syscall: 'setsockopt'`: `EOPNOTSUPP` for a non-TCP socket (AF_UNIX,
 *   UDP), `ENOTSOCK`, `EBADF`.
 */
export function setKeepAlive(target: Target, options: KeepAliveOptions = {}): void {
  const fd = targetFd(target, 'target');
  const k = parseKeepAlive(options, 'options');
  const binding = requireFd(target, fd, 'setKeepAlive()');
  const rc = binding.setKeepAlive(fd, k.enable ? 1 : 0, k.idleS, k.intervalS, k.count);
  // A failure may come after some of the options were set: what the
  // kernel holds is then unknown.
  syncNodeKeepAlive(target, rc === 0 ? k.enable : null);
  if (rc !== 0) throw systemError(rc, 'setsockopt');
}

// Node's net.Socket remembers the keepalive it last applied (lib/net.js:
// the kSetKeepAlive symbol, next to the initial delay and, from Node 24,
// interval and count) and skips a socket.setKeepAlive() that matches it.
// Once sockstate has changed keepalive through the fd, that memory is
// wrong: after sockstate turned keepalive off, Node's later
// setKeepAlive(true, 5000) would be a silent no-op. So Node's view is
// brought in step: "off" when the kernel is off (Node's setKeepAlive(false)
// is then rightly a no-op), and "unknown" (null, which no call matches)
// when the kernel holds values Node's cache cannot express, so that
// Node's next setKeepAlive() call is applied whatever its arguments.
// Node reads the symbol as a truthy flag at connect time only, where null
// (like false) keeps it from overwriting the later sockstate setting.
let nodeKeepAliveKey: symbol | undefined;

function syncNodeKeepAlive(target: Target, enabled: boolean | null): void {
  if (!(target instanceof net.Socket)) return;
  if (nodeKeepAliveKey === undefined) {
    nodeKeepAliveKey = Object.getOwnPropertySymbols(target).find((key) => key.description === 'kSetKeepAlive');
    if (nodeKeepAliveKey === undefined) return;
  }
  if (!Object.prototype.hasOwnProperty.call(target, nodeKeepAliveKey)) return;
  (target as unknown as Record<symbol, unknown>)[nodeKeepAliveKey] = enabled === false ? false : null;
}

/** `options[key]` when the caller set it on the object itself, else undefined. */
export function ownOption(options: object, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(options, key) ? (options as Record<string, unknown>)[key] : undefined;
}

/** Keepalive options checked and in the kernel's units; 0 = unchanged. */
export interface ParsedKeepAlive {
  readonly enable: boolean;
  readonly idleS: number;
  readonly intervalS: number;
  readonly count: number;
}

/**
 * Validates {@link KeepAliveOptions} (errors name `name.idleMs` etc.) and
 * converts them to the kernel's units.
 *
 * @throws TypeError / RangeError as {@link setKeepAlive} does for options.
 */
export function parseKeepAlive(options: unknown, name: string): ParsedKeepAlive {
  if (typeof options !== 'object' || options === null) throw invalidArgType(name, 'of type object', options);
  // Only the caller's own properties count, never inherited ones. Only an
  // omitted (undefined) enable means the default: null is a wrong type, as
  // Node's own boolean options treat it, not a request for keepalive.
  const enableOption = ownOption(options, 'enable');
  const enable = enableOption === undefined ? true : enableOption;
  if (typeof enable !== 'boolean') throw invalidArgType(`${name}.enable`, 'of type boolean', enable);
  const idleS = keepAliveSeconds(ownOption(options, 'idleMs'), `${name}.idleMs`);
  const intervalS = keepAliveSeconds(ownOption(options, 'intervalMs'), `${name}.intervalMs`);
  const count = ownOption(options, 'count');
  if (count !== undefined) {
    if (typeof count !== 'number') throw invalidArgType(`${name}.count`, 'of type number', count);
    if (!Number.isInteger(count) || count < 1 || count > KEEPALIVE_MAX_COUNT) {
      throw outOfRange(`${name}.count`, `an integer >= 1 and <= ${KEEPALIVE_MAX_COUNT}`, count);
    }
  }
  if (!enable && (idleS !== 0 || intervalS !== 0 || count !== undefined)) {
    throw invalidArgValue(name, 'cannot set idleMs, intervalMs or count with enable: false');
  }
  return { enable, idleS, intervalS, count: count ?? 0 };
}

/**
 * Validates a TCP_USER_TIMEOUT value in ms.
 *
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError `ERR_OUT_OF_RANGE`.
 */
export function checkUserTimeout(ms: unknown, name: string): number {
  if (typeof ms !== 'number') throw invalidArgType(name, 'of type number', ms);
  if (!Number.isInteger(ms) || ms < 0 || ms > USER_TIMEOUT_MAX_MS) {
    throw outOfRange(name, `an integer >= 0 and <= ${USER_TIMEOUT_MAX_MS}`, ms);
  }
  return ms;
}

/**
 * Reads the keepalive settings back from the kernel.
 *
 * @param target - A connected net.Socket / tls.TLSSocket, or a TCP fd.
 * @returns The current {@link KeepAliveSettings}, durations in ms.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError `ERR_OUT_OF_RANGE`
 *   for a bad target.
 * @throws SockstateError `ERR_SOCKSTATE_NO_FD`, `ERR_SOCKSTATE_UNSUPPORTED`,
 *   or a system error with `syscall: 'getsockopt'` (`EOPNOTSUPP` for a
 *   non-TCP socket, `ENOTSOCK`, `EBADF`).
 */
export function getKeepAlive(target: Target): KeepAliveSettings {
  const fd = targetFd(target, 'target');
  const binding = requireFd(target, fd, 'getKeepAlive()');
  const rc = binding.getKeepAlive(fd, readBack);
  if (rc !== 0) throw systemError(rc, 'getsockopt');
  return {
    enabled: readBack[0] !== 0,
    idleMs: readBack[1]! * 1000,
    intervalMs: readBack[2]! * 1000,
    count: readBack[3]!,
  };
}

/**
 * Sets TCP_USER_TIMEOUT: how long transmitted data may stay unacknowledged
 * (or a zero window stay closed) before the kernel drops the connection
 * with ETIMEDOUT, instead of the ~15 minutes of the default retransmission
 * limit. While keepalive is on, it also bounds the probing (the connection
 * is dropped once it has been silent this long, whatever `count` says).
 * `0` restores the system's behaviour.
 *
 * @param target - A net.Socket / tls.TLSSocket (connecting or connected), or a TCP fd.
 * @param ms - 0 … 2147483647.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` for a bad target or a non-number.
 * @throws RangeError `ERR_OUT_OF_RANGE` for a non-integer or out-of-range value.
 * @throws SockstateError `ERR_SOCKSTATE_NO_FD`, `ERR_SOCKSTATE_UNSUPPORTED`,
 *   or a system error with `syscall: 'setsockopt'` (`EOPNOTSUPP` for a
 *   non-TCP socket, `ENOTSOCK`, `EBADF`).
 */
export function setUserTimeout(target: Target, ms: number): void {
  const fd = targetFd(target, 'target');
  checkUserTimeout(ms, 'ms');
  const binding = requireFd(target, fd, 'setUserTimeout()');
  const rc = binding.setUserTimeout(fd, ms);
  if (rc !== 0) throw systemError(rc, 'setsockopt');
}

/**
 * Reads TCP_USER_TIMEOUT back, in ms (0: not set, the system's behaviour).
 *
 * @param target - A net.Socket / tls.TLSSocket, or a TCP fd.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError `ERR_OUT_OF_RANGE`
 *   for a bad target.
 * @throws SockstateError `ERR_SOCKSTATE_NO_FD`, `ERR_SOCKSTATE_UNSUPPORTED`,
 *   or a system error with `syscall: 'getsockopt'` (`EOPNOTSUPP` for a
 *   non-TCP socket, `ENOTSOCK`, `EBADF`).
 */
export function getUserTimeout(target: Target): number {
  const fd = targetFd(target, 'target');
  const binding = requireFd(target, fd, 'getUserTimeout()');
  const rc = binding.getUserTimeout(fd);
  if (rc < 0) throw systemError(rc, 'getsockopt');
  return rc;
}
