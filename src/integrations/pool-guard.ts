/**
 * What the pool guards (`sockstate/pg`, `sockstate/mysql2`) share: their
 * options, their counters, and the one check of a pooled connection's
 * socket at checkout. Each guard only finds the socket and evicts the way
 * its pool expects.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { publishReuseCheck } from '../policy/channel';
import { invalidArgType } from '../errors';
import { type ReuseOptions, type ReusePolicy, type ReuseReason, reusePolicy, reuseReasonWith, type UnreadData } from '../policy/reuse';

/** Why a pool guard turned a connection away: every reason but `idle`. */
export type Rejection = Exclude<ReuseReason, 'idle'>;

/** Options of a pool guard's `guardPool()`. */
export interface PoolGuardOptions {
  /**
   * Stricter reuse rules ({@link ReuseOptions}): a bound on how long the
   * server may have been silent (`maxSilentMs`), and whether stalled
   * connections may be reused. Each check then reads `TCP_INFO`; without
   * this option it is one `poll(2)` and rules out what is closed, reset,
   * has an error pending or (where the guard's protocol says unread bytes
   * are a goodbye) holds unread bytes. `reuse.unreadData` overrides the
   * guard's protocol rule (`'message'` for pg, `'goodbye'` for mysql2).
   */
  readonly reuse?: ReuseOptions;
}

/** What a pool guard has done so far: a snapshot from its `guardStats()`. */
export interface PoolGuardStats {
  /** Pooled connections checked before being handed out. */
  readonly checked: number;
  /** Of those, rejected: removed from the pool instead of handed out. */
  readonly rejected: number;
  /**
   * Rejections by reason: `closed` (closed or reset by the server, or an
   * error pending), `dataPending` (bytes nobody read: the server's goodbye
   * or error packet in front of its FIN or reset, or, for mysql2, any
   * bytes at all), `stalled` and `silent` (under `reuse`).
   */
  readonly rejectedByReason: Readonly<Record<Rejection, number>>;
  /**
   * Connections handed out unchecked because sockstate cannot see their
   * socket: a driver that owns it natively (pg-native), a custom `stream`
   * that is not a `net.Socket`, or a socket the kernel refused to probe.
   */
  readonly unchecked: number;
  /** The error of the last probe that failed (counted in `unchecked`), or null. */
  readonly lastProbeError: Error | null;
}

/** A guard's state, kept per pool by the module that installed it. */
export interface PoolGuard {
  /** The pool the user guarded: the owner in channel messages. */
  readonly owner: object;
  policy: ReusePolicy | null;
  checked: number;
  rejected: number;
  readonly rejectedByReason: Record<Rejection, number>;
  unchecked: number;
  lastProbeError: Error | null;
}

/**
 * The validated policy of `guardPool(pool, options)`, read from the
 * caller's own `options.reuse` only.
 *
 * @param options - The caller's options.
 * @param unreadData - What unread bytes on an idle connection mean in the
 *   pool's protocol, unless `options.reuse.unreadData` says otherwise.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` for options that are not an
 *   object, and as `reusePolicy()` for a malformed `reuse`.
 */
export function guardPolicy(options: unknown, unreadData: UnreadData): ReusePolicy | null {
  if (options === undefined) return reusePolicy(undefined, 'options.reuse', unreadData);
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const reuse = Object.prototype.hasOwnProperty.call(options, 'reuse') ? (options as PoolGuardOptions).reuse : undefined;
  return reusePolicy(reuse, 'options.reuse', unreadData);
}

/** A fresh guard for `owner`. */
export function newGuard(owner: object, policy: ReusePolicy | null): PoolGuard {
  return {
    owner,
    policy,
    checked: 0,
    rejected: 0,
    rejectedByReason: { closed: 0, dataPending: 0, stalled: 0, silent: 0 },
    unchecked: 0,
    lastProbeError: null,
  };
}

/** A snapshot of `guard`'s counters, or null for a pool never guarded. */
export function statsOf(guard: PoolGuard | undefined): PoolGuardStats | null {
  if (guard === undefined) return null;
  return {
    checked: guard.checked,
    rejected: guard.rejected,
    rejectedByReason: { ...guard.rejectedByReason },
    unchecked: guard.unchecked,
    lastProbeError: guard.lastProbeError,
  };
}

/**
 * Checks the socket of a connection the pool is about to hand out: null
 * when it may go, else why not, counted and published. Without `reuse` a
 * reusable socket costs one `poll(2)`. What sockstate cannot see into (no
 * `net.Socket`, or a socket the kernel refuses to probe) goes out as the
 * pool would hand it out, counted in `unchecked` with the error kept.
 */
export function screen(guard: PoolGuard, socket: unknown): Rejection | null {
  if (!(socket instanceof net.Socket)) {
    guard.unchecked += 1;
    return null;
  }
  let reason: ReuseReason;
  try {
    reason = reuseReasonWith(socket, guard.policy);
  } catch (err) {
    guard.unchecked += 1;
    guard.lastProbeError = err as Error;
    return null;
  }
  guard.checked += 1;
  publishReuseCheck(guard.owner, reason === 'idle', reason);
  if (reason === 'idle') return null;
  guard.rejected += 1;
  guard.rejectedByReason[reason] += 1;
  return reason;
}
