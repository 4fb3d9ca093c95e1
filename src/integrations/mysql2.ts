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
import { publishConnection } from '../policy/channel';
import { invalidArgType, invalidArgValue } from '../errors';
import { guardPolicy, newGuard, type PoolGuard, type PoolGuardOptions, type PoolGuardStats, screen, statsOf } from './pool-guard';

/** Options for {@link guardPool}: see {@link PoolGuardOptions}. */
export type Mysql2GuardOptions = PoolGuardOptions;

/** What a guard has done so far: a snapshot from {@link guardStats}. */
export type Mysql2GuardStats = PoolGuardStats;

// The parts of mysql2's pool (lib/base/pool.js) the guard relies on; the
// same in every mysql2 3.x release.
interface Queue<T> {
  readonly length: number;
  get(index: number): T | undefined;
  removeOne(index: number): unknown;
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
  _connectionQueue: Queue<unknown>;
  config: { resetOnRelease?: boolean };
  getConnection(cb: GetConnectionCallback): unknown;
  releaseConnection(connection: PoolConnection): unknown;
  on(event: 'connection', listener: (connection: PoolConnection) => void): unknown;
}

const guards = new WeakMap<object, PoolGuard>();

function isQueue(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Queue<unknown>).length === 'number' &&
    typeof (value as Queue<unknown>).get === 'function' &&
    typeof (value as Queue<unknown>).removeOne === 'function'
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

function reject(connection: PoolConnection): void {
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
function screenFree(pool: CorePool, guard: PoolGuard): void {
  const free = pool._freeConnections;
  while (free.length > 0) {
    const last = free.length - 1;
    const connection = free.get(last)!;
    if (screen(guard, connection.stream) === null) return;
    reject(connection);
    // destroy() splices it out; make sure, or the loop would not end.
    if (free.length > last && free.get(last) === connection) free.removeOne(last);
  }
}

function install(pool: CorePool, guard: PoolGuard): void {
  const getConnection = pool.getConnection;
  const releaseConnection = pool.releaseConnection;
  const define = (name: string, value: unknown) =>
    Object.defineProperty(pool, name, { value, writable: true, configurable: true, enumerable: false });

  define('getConnection', function guardedGetConnection(this: unknown, cb: GetConnectionCallback): unknown {
    if (pool._closed !== true) screenFree(pool, guard);
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
      if (screen(guard, connection.stream) !== null) {
        // destroy() calls releaseConnection again for the freed slot,
        // which passes the waiter on to getConnection.
        reject(connection);
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
 * closed or reset, or holds bytes nobody asked for (a MySQL server speaks
 * only when asked, so those are its goodbye or error packet), or, under
 * `options.reuse`, has been silent too long or is stalled. Such a
 * connection is destroyed the way mysql2 evicts one (the pool forgets it
 * and frees its slot), counted in {@link guardStats}, and checkout moves
 * on to the next free connection or opens a new one. The same check applies when a released connection
 * goes straight to a queued request. New connections are not checked:
 * they were just connected.
 *
 * Works on `mysql2.createPool()` and on `mysql2/promise`'s `createPool()`
 * (guarding the callback pool inside it; `promisePool.pool` is then
 * guarded too). Pool events (`'acquire'`, `'release'`, `'connection'`,
 * `'enqueue'`), limits and the wait queue behave as before. Every check is
 * published with `publishReuseCheck(pool, …)` and every connection the
 * pool opens with `publishConnection(pool, …)`, `pool` being the object
 * first guarded. Guarding a pool again replaces its `reuse`.
 *
 * The driver's own `'error'` events and query errors reach you as before
 * for every connection the guard hands out; a connection it rejects gets
 * none (it was closed by its owner, as with mysql2's idle eviction): see
 * {@link guardStats} and the reuse-check channel for what was rejected and
 * why.
 *
 * Not covered: a close still in flight (no local check can see it),
 * connections sockstate cannot see into (a custom `stream` that is not a
 * `net.Socket`, or a socket the kernel refuses to probe: handed out
 * unchecked and counted in `unchecked`), and `createPoolCluster()` (which
 * does not expose its member pools).
 *
 * @param pool - A pool from mysql2's `createPool()` or mysql2/promise's.
 * @param options - See {@link Mysql2GuardOptions}.
 * @returns The same pool.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` when `pool` is not an object,
 *   or `options` (or `options.reuse`, or one of its fields) has the wrong
 *   type; `ERR_INVALID_ARG_VALUE` when `pool` is not a mysql2 3.x pool, or
 *   for a `reuse.unreadData` other than `'goodbye'` or `'message'`.
 * @throws RangeError `ERR_OUT_OF_RANGE` for `options.reuse.maxSilentMs`
 *   out of range.
 */
export function guardPool<P extends object>(pool: P, options?: Mysql2GuardOptions): P {
  if (pool === null || typeof pool !== 'object') {
    throw invalidArgType('pool', "an instance of mysql2's Pool or PromisePool", pool);
  }
  // A MySQL server answers; it never speaks unasked on a healthy
  // connection (the protocol has no notifications), so unread bytes on an
  // idle one are its goodbye or a desync that would feed the next query a
  // stale reply. Measured on MariaDB 10.11, every goodbye comes without a
  // packet: wait_timeout and idle_transaction_timeout reset the connection,
  // KILL, KILL SOFT and a shutdown close it with a bare FIN. MySQL 8.0.24+
  // sends an error packet (ER_CLIENT_INTERACTION_TIMEOUT) first, which
  // 'goodbye' catches even before the FIN arrives.
  const policy = guardPolicy(options, 'goodbye');
  const core = corePoolOf(pool);
  if (core === null) {
    throw invalidArgValue('pool', "is not a pool from mysql2's createPool() or mysql2/promise's createPool() (mysql2 3.x)");
  }
  const existing = guards.get(core);
  if (existing !== undefined) {
    existing.policy = policy;
    guards.set(pool, existing);
    return pool;
  }
  const guard = newGuard(pool, policy);
  guards.set(core, guard);
  if (core !== (pool as object)) guards.set(pool, guard);
  install(core, guard);
  return pool;
}

/**
 * What the guard of `pool` has checked and rejected so far, or null for a
 * pool {@link guardPool} never guarded.
 *
 * @param pool - A pool passed to {@link guardPool} (for a promise pool,
 *   either it or its `.pool`).
 * @returns A new {@link Mysql2GuardStats} snapshot, or null.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` when `pool` is not an object.
 */
export function guardStats(pool: object): Mysql2GuardStats | null {
  if (pool === null || typeof pool !== 'object') throw invalidArgType('pool', 'of type object', pool);
  return statsOf(guards.get(pool));
}
