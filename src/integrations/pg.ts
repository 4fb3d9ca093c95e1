/**
 * `sockstate/pg`: a checkout guard for node-postgres' `pg.Pool`.
 *
 * pg-pool hands an idle client out from `process.nextTick`, before libuv
 * has polled its socket: a client whose server ended the session while the
 * event loop was busy (an `idle_session_timeout`, `pg_terminate_backend`,
 * a restart) goes out anyway and its query fails with "Connection
 * terminated unexpectedly". The guard asks the kernel, at the moment the
 * pool hands an idle client out, whether its socket can carry a query, and
 * removes it the way pg-pool removes a broken client if not.
 *
 * pg itself is never loaded here: the pool is used through its own methods.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { publishConnection } from '../policy/channel';
import { codedError, invalidArgType, invalidArgValue, type SockstateError } from '../errors';
import { guardPolicy, newGuard, type PoolGuard, type PoolGuardOptions, type PoolGuardStats, type Rejection, screen, statsOf } from './pool-guard';

/** Options for {@link guardPool}: see {@link PoolGuardOptions}. */
export type PgGuardOptions = PoolGuardOptions;

/**
 * What a guard has done so far: a snapshot from {@link guardStats}. Idle
 * clients of pg-native (libpq owns the socket) count as `unchecked`.
 */
export type PgGuardStats = PoolGuardStats;

/** The error an evicted client is released with (pool `'release'` event). */
export type PgEvictionError = SockstateError & {
  readonly code: 'ERR_SOCKSTATE_EVICTED';
  /** Why the client could not be reused. */
  readonly reason: Rejection;
};

// The parts of pg-pool 3.x the guard relies on.
interface IdleItem {
  client: PgClientLike;
  idleListener: (err: Error) => void;
  timeoutId: ReturnType<typeof setTimeout> | undefined;
}
interface PendingItem {
  timedOut?: boolean;
  callback(err: Error | undefined, client: undefined, release: () => void): void;
}
interface PgPoolInternals {
  _idle: IdleItem[];
  _pendingQueue: PendingItem[];
  _pulseQueue(): void;
  _acquireClient(client: PgClientLike, pending: { callback: (err: unknown, client: unknown, release: (err?: Error) => void) => void }, idleListener: unknown, isNew: boolean): void;
  ending: boolean;
  ended: boolean;
  on(event: 'connect', listener: (client: PgClientLike) => void): unknown;
}
interface PgClientLike {
  connection?: { stream?: unknown };
}

interface Guard extends PoolGuard {
  /** Clients already announced on the connection channel. */
  readonly seen: WeakSet<object>;
}

const guards = new WeakMap<object, Guard>();

function isPgPool(pool: unknown): pool is PgPoolInternals {
  const p = pool as Partial<PgPoolInternals>;
  return (
    Array.isArray(p._idle) &&
    Array.isArray(p._pendingQueue) &&
    typeof p._pulseQueue === 'function' &&
    typeof p._acquireClient === 'function' &&
    typeof p.on === 'function'
  );
}

/** The client's socket, or null when it has none sockstate can probe. */
function socketOf(client: PgClientLike): net.Socket | null {
  const stream = client.connection?.stream;
  return stream instanceof net.Socket ? stream : null;
}

function announce(pool: object, guard: Guard, client: PgClientLike): void {
  if (guard.seen.has(client)) return;
  const socket = socketOf(client);
  if (socket === null) return;
  guard.seen.add(client);
  publishConnection(pool, socket);
}

/**
 * Removes, before the pool hands them out, idle clients that cannot carry
 * a query. Runs where pg-pool pops an idle client (`_pulseQueue`), only
 * when a checkout is waiting for one.
 */
function evictUnusable(pool: PgPoolInternals, guard: Guard): void {
  if (pool.ending || pool.ended) return;
  while (pool._pendingQueue.length > 0 && pool._idle.length > 0) {
    // pg-pool hands out the most recently released client (pop).
    const item = pool._idle[pool._idle.length - 1]!;
    announce(pool, guard, item.client);
    const socket = socketOf(item.client);
    const reason = screen(guard, socket);
    if (reason === null) return;
    pool._idle.pop();
    clearTimeout(item.timeoutId);
    const error = codedError(
      'ERR_SOCKSTATE_EVICTED',
      `sockstate/pg: removed an idle client whose connection cannot be reused (${reason})`,
    ) as SockstateError & { reason: Rejection };
    error.reason = reason;
    // As pg-pool retires an expired client: acquire it and release it with
    // an error, which emits 'acquire' and 'release', drops it from the
    // pool's count at once and ends it ('remove' follows).
    pool._acquireClient(item.client, { callback: (_err, _client, release) => release(error) }, item.idleListener, false);
    // pg-pool has begun a graceful end (Terminate, then wait for the
    // server's close). Close the socket now instead: a server that stopped
    // answering (silent, stalled) would hold it open until TCP gives up,
    // and a goodbye still unread would be parsed as a new error of a client
    // already removed, which pg-pool would remove (and report) twice.
    if (socket !== null && !socket.destroyed) socket.destroy();
    // A pool.end() from an 'acquire' or 'release' listener of the eviction:
    // an ending pg-pool hands out nothing more, so the checkouts waiting
    // for the client just removed would wait forever. Stock pg-pool would
    // have given the first of them that client, whose query then failed.
    if (pool.ending) failWaiting(pool, error);
  }
}

const noop = (): void => {};

/** Fails, as pg-pool fails a checkout on an ended pool, every checkout still waiting. */
function failWaiting(pool: PgPoolInternals, cause: Error): void {
  for (const item of pool._pendingQueue.splice(0)) {
    if (item.timedOut === true) continue;
    item.callback(new Error('Cannot use a pool after calling end on the pool', { cause }), undefined, noop);
  }
}

/**
 * Guards a node-postgres `pg.Pool` (pg-pool 3.x): every checkout, by
 * `pool.connect()` in both its callback and promise forms and so by
 * `pool.query()`, gets a client whose socket the kernel says can carry a
 * query. An idle client that is closed or reset (its FATAL goodbye, when
 * unread, counts as `dataPending`), has an error pending, or under
 * `options.reuse` is `silent` or `stalled`, is removed the way pg-pool
 * removes a broken client (released with a {@link PgEvictionError}, so
 * `'acquire'`, `'release'` and `'remove'` fire and `totalCount` drops at
 * once) and the checkout moves on to the next idle client or a new
 * connection. New clients are not checked: they were just connected.
 *
 * Bytes waiting on an open client are not a reason to remove it:
 * PostgreSQL sends messages unasked on healthy sessions (a
 * NotificationResponse after `LISTEN`), and pg reads them once the client
 * is out, as the stock pool does, so no notification is lost. Its
 * goodbyes come with a FIN or a reset, which rules the client out
 * (`reuse.unreadData: 'goodbye'` treats any unread bytes as a goodbye).
 *
 * A `pool.end()` called from an `'acquire'` or `'release'` listener while
 * the guard evicts fails every checkout still waiting, with pg-pool's
 * "Cannot use a pool after calling end on the pool" (its `cause` the
 * eviction error): an ending pool hands out nothing more.
 *
 * Works over TLS (`ssl`). Clients without a socket sockstate can see
 * (pg-native, where libpq owns it) pass through unchecked and are counted
 * in {@link PgGuardStats.unchecked}. What was evicted is counted
 * ({@link guardStats}) and each check is published on the
 * `sockstate:reuse-check` channel with the pool as owner; each connection
 * on `sockstate:connection`.
 *
 * An evicted client's socket is closed at once: what the server sent and
 * nobody read (its FATAL goodbye) is discarded with it, and the eviction's
 * `reason` (`dataPending`) stands for it. Errors pg reads while the event
 * loop is free still reach the pool's `'error'` event as before: the guard
 * acts only at checkout.
 *
 * Guarding a pool again replaces its options. pg is never loaded: the pool
 * is used through its own methods, so any pg-pool 3.x works.
 *
 * @param pool - A `pg.Pool`.
 * @param options - See {@link PgGuardOptions}.
 * @returns The same pool.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` when `pool` is not an object
 *   or the options are malformed; `ERR_INVALID_ARG_VALUE` when it is not a
 *   pg-pool 3.x pool, or for a `reuse.unreadData` other than `'goodbye'`
 *   or `'message'`. RangeError `ERR_OUT_OF_RANGE` for an out-of-range
 *   `reuse.maxSilentMs`.
 */
export function guardPool<P extends object>(pool: P, options?: PgGuardOptions): P {
  if (pool === null || typeof pool !== 'object') throw invalidArgType('pool', 'an instance of pg.Pool', pool);
  // PostgreSQL speaks unasked on healthy sessions (measured on 15: a
  // NotificationResponse after LISTEN reaches an idle client), and its
  // goodbyes (FATAL 57P05 on idle_session_timeout, 57P01 on
  // pg_terminate_backend) come with a FIN: unread bytes alone are a message
  // for pg to read, not a reason to drop the client.
  const policy = guardPolicy(options, 'message');
  if (!isPgPool(pool)) {
    throw invalidArgValue('pool', 'is not a pg.Pool this version of sockstate/pg can guard (pg-pool 3.x)');
  }
  const existing = guards.get(pool);
  if (existing !== undefined) {
    existing.policy = policy;
    return pool;
  }
  const guard: Guard = { ...newGuard(pool, policy), seen: new WeakSet() };
  guards.set(pool, guard);
  const pulse = pool._pulseQueue;
  // An own property shadows pg-pool's method, for its internal calls too.
  Object.defineProperty(pool, '_pulseQueue', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function guardedPulseQueue(this: PgPoolInternals): void {
      evictUnusable(this, guard);
      return pulse.call(this);
    },
  });
  pool.on('connect', (client) => announce(pool, guard, client));
  for (const item of pool._idle) announce(pool, guard, item.client);
  return pool;
}

/**
 * What the guard of `pool` has checked and evicted so far, or null for a
 * pool {@link guardPool} never guarded.
 *
 * @param pool - A pool returned by {@link guardPool}.
 * @returns A new {@link PgGuardStats} snapshot.
 */
export function guardStats(pool: object): PgGuardStats | null {
  return statsOf(guards.get(pool));
}
