/**
 * `sockstate/mysql2`: a checkout guard for mysql2's connection pools.
 *
 * mysql2 takes a free connection synchronously in `getConnection()` (and
 * so in `query()` and `execute()`), before libuv has polled its socket: a
 * connection the server closed while the event loop was busy is handed
 * out, and the query fails with `ECONNRESET`, `PROTOCOL_CONNECTION_LOST`
 * or "Can't add new command when connection is in closed state". The
 * guard asks the kernel first and destroys what it cannot reuse.
 *
 * mysql2 is never loaded by this module: it works on the pool it is given.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { publishConnection, publishReuseCheck } from './channel';
import { invalidArgType } from './errors';
import {
  checkReusableWith,
  isReusableWith,
  type ReuseOptions,
  type ReusePolicy,
  type ReuseReason,
  reusePolicy,
} from './reuse';

/** Options for {@link guardPool}. */
export interface GuardPoolOptions {
  /**
   * Stricter reuse rules: also reject connections whose peer has been
   * silent too long (`maxSilentMs`) or on which the kernel is
   * retransmitting (unless `allowStalled`). Each check then reads
   * `TCP_INFO`; without this option it is one `poll(2)`.
   */
  readonly reuse?: ReuseOptions;
}

/** Why the guard rejected connections, by {@link ReuseReason}. */
export interface RejectedByReason {
  /** Closed or reset by the server, or with an error pending. */
  readonly closed: number;
  /** Holding bytes nobody asked for (such as the server's goodbye packet). */
  readonly dataPending: number;
  /** Peer silent longer than `reuse.maxSilentMs`. */
  readonly silent: number;
  /** The kernel is retransmitting (with `reuse` and without `allowStalled`). */
  readonly stalled: number;
}

/** A snapshot of what a guarded pool's checks found; see {@link guardStats}. */
export interface PoolGuardStats {
  /** Free connections checked before being handed out. */
  readonly checked: number;
  /** Connections rejected and destroyed instead of handed out. */
  readonly rejected: number;
  /** {@link PoolGuardStats.rejected}, by reason. */
  readonly rejectedByReason: RejectedByReason;
}

// The parts of mysql2's pool (lib/base/pool.js) the guard relies on; the
// same in every mysql2 3.x release.
interface Queue<T> {
  readonly length: number;
  get(index: number): T | undefined;
  removeOne(index: number): unknown;
  shift(): T | undefined;
}

interface PoolConnection {
  stream?: unknown;
  _pool?: unknown;
  destroy(): void;
}

type GetConnectionCallback = (err: Error | null, connection?: PoolConnection) => void;

interface CorePool {
  _closed?: boolean;
  _freeConnections: Queue<PoolConnection>;
  _allConnections: Queue<PoolConnection>;
  _connectionQueue: Queue<GetConnectionCallback>;
  config: { resetOnRelease?: boolean };
  getConnection(cb: GetConnectionCallback): unknown;
  releaseConnection(connection: PoolConnection): unknown;
  on(event: 'connection', listener: (connection: PoolConnection) => void): unknown;
}

interface Guard {
  readonly owner: object;
  readonly policy: ReusePolicy | null;
  checked: number;
  rejected: number;
  readonly byReason: Record<keyof RejectedByReason, number>;
}

const guards = new WeakMap<object, Guard>();

function isQueue(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Queue<unknown>).length === 'number' &&
    typeof (value as Queue<unknown>).get === 'function' &&
    typeof (value as Queue<unknown>).removeOne === 'function' &&
    typeof (value as Queue<unknown>).shift === 'function'
  );
}

function asCorePool(value: unknown): CorePool | null {
  if (typeof value !== 'object' || value === null) return null;
  const pool = value as CorePool;
  return typeof pool.getConnection === 'function' &&
    typeof pool.releaseConnection === 'function' &&
    typeof pool.on === 'function' &&
    typeof pool.config === 'object' &&
    pool.config !== null &&
    isQueue(pool._freeConnections) &&
    isQueue(pool._allConnections) &&
    isQueue(pool._connectionQueue)
    ? pool
    : null;
}

// mysql2/promise's pool wraps a callback pool in its own `pool` property.
function corePoolOf(value: unknown): CorePool | null {
  const core = asCorePool(value);
  if (core !== null) return core;
  if (typeof value !== 'object' || value === null || !Object.prototype.hasOwnProperty.call(value, 'pool')) return null;
  if (typeof (value as { getConnection?: unknown }).getConnection !== 'function') return null;
  return asCorePool((value as { pool: unknown }).pool);
}

/**
 * The verdict on one connection about to be handed out: null when it may
 * go, else why not. A connection over something other than a `net.Socket`
 * (mysql2's `stream` option with a custom duplex) cannot be seen into and
 * goes unchecked.
 */
function rejection(guard: Guard, connection: PoolConnection): Exclude<ReuseReason, 'idle'> | null {
  const socket = connection.stream;
  if (!(socket instanceof net.Socket)) return null;
  guard.checked++;
  let reason: ReuseReason;
  if (guard.policy === null) {
    // The common case stays one poll(2); the reason is worked out only
    // for a connection that is going anyway.
    reason = isReusableWith(socket, null) ? 'idle' : checkReusableWith(socket, null).reason;
  } else {
    reason = checkReusableWith(socket, guard.policy).reason;
  }
  if (reason === 'idle') {
    publishReuseCheck(guard.owner, true, reason);
    return null;
  }
  return reason;
}

function reject(guard: Guard, connection: PoolConnection, reason: Exclude<ReuseReason, 'idle'>): void {
  guard.rejected++;
  guard.byReason[reason]++;
  publishReuseCheck(guard.owner, false, reason);
  // mysql2's own eviction (as for its idle timeout): it takes the
  // connection out of the free and all-connections lists, frees its slot
  // for any waiter, and marks it closing so the driver reports nothing
  // more for it. Destroying the socket as well releases the fd now rather
  // than after a FIN exchange with a peer that may be gone.
  connection.destroy();
  const socket = connection.stream;
  if (socket instanceof net.Socket && !socket.destroyed) socket.destroy();
}

// Rejects free connections from the end mysql2 pops, until the one it
// will hand out is reusable or none is left (then it opens a new one).
function screenFree(pool: CorePool, guard: Guard): void {
  const free = pool._freeConnections;
  while (free.length > 0) {
    const last = free.length - 1;
    const connection = free.get(last)!;
    const reason = rejection(guard, connection);
    if (reason === null) return;
    reject(guard, connection, reason);
    // destroy() splices it out; make sure, or the loop would not end.
    if (free.length > last && free.get(last) === connection) free.removeOne(last);
  }
}

function install(pool: CorePool, guard: Guard): void {
  const getConnection = pool.getConnection;
  const releaseConnection = pool.releaseConnection;
  const define = (name: string, value: unknown) =>
    Object.defineProperty(pool, name, { value, writable: true, configurable: true, enumerable: false });

  define('getConnection', function guardedGetConnection(this: unknown, cb: GetConnectionCallback): unknown {
    if (pool._closed !== true) {
      try {
        screenFree(pool, guard);
      } catch (err) {
        // A check that fails (a system error from the kernel) fails this
        // checkout the way mysql2 fails one, asynchronously.
        process.nextTick(cb, err as Error);
        return undefined;
      }
    }
    return Reflect.apply(getConnection, this, [cb]);
  });

  // A released connection goes straight to a waiting request when there
  // is one (without passing getConnection): check it there too. With
  // `resetOnRelease`, mysql2 first sends a reset, whose failure evicts a
  // dead connection already.
  define('releaseConnection', function guardedReleaseConnection(this: unknown, connection: PoolConnection): unknown {
    if (
      pool._closed !== true &&
      pool._connectionQueue.length > 0 &&
      pool.config.resetOnRelease !== true &&
      typeof connection === 'object' &&
      connection !== null &&
      connection._pool === pool
    ) {
      let reason: Exclude<ReuseReason, 'idle'> | null;
      try {
        reason = rejection(guard, connection);
      } catch (err) {
        // A check that fails (a system error from the kernel) fails the
        // checkout it was made for, as in getConnection; the connection
        // is then released as mysql2 would release it.
        process.nextTick(pool._connectionQueue.shift()!, err as Error);
        reason = null;
      }
      if (reason !== null) {
        // destroy() calls releaseConnection again for the freed slot,
        // which passes the waiter on to getConnection.
        reject(guard, connection, reason);
        return undefined;
      }
    }
    return Reflect.apply(releaseConnection, this, [connection]);
  });

  // Each connection once: those already open when the pool is guarded,
  // and each one it opens later (one still connecting now is among both).
  const announced = new WeakSet<object>();
  const announce = (connection: PoolConnection | undefined) => {
    if (typeof connection !== 'object' || connection === null || announced.has(connection)) return;
    const stream = connection.stream;
    if (typeof stream !== 'object' || stream === null) return;
    announced.add(connection);
    publishConnection(guard.owner, stream);
  };
  pool.on('connection', announce);
  for (let i = 0; i < pool._allConnections.length; i++) announce(pool._allConnections.get(i));
}

/**
 * Guards a mysql2 pool's checkouts: `getConnection()`, `query()` and
 * `execute()` never hand out a connection whose socket the kernel knows is
 * closed or reset, or holds bytes nobody asked for (the server's goodbye
 * or error packet), or, under `options.reuse`, has been silent too long or
 * is stalled. Such a connection is destroyed the way mysql2 evicts one
 * (the pool forgets it and frees its slot), counted in
 * {@link guardStats}, and checkout moves on to the next free connection
 * or opens a new one. The same check applies when a released connection
 * goes straight to a queued request.
 *
 * Works on `mysql2.createPool()` and on `mysql2/promise`'s `createPool()`
 * (guarding the callback pool inside it; `promisePool.pool` is then
 * guarded too). Pool events (`'acquire'`, `'release'`, `'connection'`,
 * `'enqueue'`), limits and the wait queue behave as before. Every check is
 * published with `publishReuseCheck(pool, …)` and every connection the
 * pool opens with `publishConnection(pool, …)`. Guarding a pool twice
 * changes nothing.
 *
 * The driver's own `'error'` events and query errors reach you as before
 * for every connection the guard hands out; a connection it rejects gets
 * none (it was closed by its owner, as with mysql2's idle eviction): see
 * {@link guardStats} and the reuse-check channel for what was rejected and
 * why.
 *
 * Not covered: a close still in flight (no local check can see it),
 * connections over a custom `stream` that is not a `net.Socket` (handed
 * out unchecked), and `createPoolCluster()` (guard each member pool
 * instead; the cluster does not expose them).
 *
 * @param pool - A pool from mysql2's `createPool()` or mysql2/promise's.
 * @param options - See {@link GuardPoolOptions}.
 * @returns The same pool.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` when `pool` is not a mysql2
 *   pool or `options` (or `options.reuse`, or one of its fields) has the
 *   wrong type.
 * @throws RangeError `ERR_OUT_OF_RANGE` for `options.reuse.maxSilentMs`
 *   out of range.
 */
export function guardPool<P extends object>(pool: P, options?: GuardPoolOptions): P {
  const core = corePoolOf(pool);
  if (core === null) {
    throw invalidArgType('pool', "a pool from mysql2's createPool() or mysql2/promise's createPool()", pool);
  }
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw invalidArgType('options', 'of type object', options);
  }
  const reuse = options !== undefined && Object.prototype.hasOwnProperty.call(options, 'reuse') ? options.reuse : undefined;
  const policy = reusePolicy(reuse, 'options.reuse');
  const existing = guards.get(core);
  if (existing !== undefined) {
    guards.set(pool, existing);
    return pool;
  }
  const guard: Guard = {
    owner: pool,
    policy,
    checked: 0,
    rejected: 0,
    byReason: { closed: 0, dataPending: 0, silent: 0, stalled: 0 },
  };
  guards.set(core, guard);
  if (core !== (pool as object)) guards.set(pool, guard);
  install(core, guard);
  return pool;
}

/**
 * What a pool's guard has checked and rejected so far, as a new snapshot.
 *
 * @param pool - A pool passed to {@link guardPool} (for a promise pool,
 *   either it or its `.pool`).
 * @returns Counts since the pool was guarded.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` when `pool` is not a guarded
 *   mysql2 pool.
 */
export function guardStats(pool: object): PoolGuardStats {
  const guard = typeof pool === 'object' && pool !== null ? guards.get(pool) : undefined;
  if (guard === undefined) throw invalidArgType('pool', 'a mysql2 pool passed to guardPool()', pool);
  return {
    checked: guard.checked,
    rejected: guard.rejected,
    rejectedByReason: { ...guard.byReason },
  };
}
