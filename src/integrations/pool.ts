/**
 * `sockstate/pool`: connection validation for generic pools, such as
 * knex's (tarn's `validate`) and generic-pool's (`validate` with
 * `testOnBorrow`). It finds the socket of a pg `Client`, a mysql2
 * `Connection` or a plain `net.Socket` and asks the kernel whether it can
 * carry the next query. A validator always answers: a pool cannot be
 * left waiting on a check that threw.
 *
 * No driver is ever loaded here: connections are recognised by shape.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { publishConnection, publishReuseCheck } from '../policy/channel';
import { codedError, invalidArgType } from '../errors';
import { isReusableWith, reuseReasonWith, type ReuseOptions, type ReusePolicy, reusePolicy, type ReuseReason, type UnreadData } from '../policy/reuse';

/** Options for {@link createValidator}. */
export interface ValidatorOptions {
  /**
   * Stricter reuse rules ({@link ReuseOptions}); omit for the plain check.
   * `reuse.unreadData` overrides what unread bytes mean, which is otherwise
   * decided per connection: `'message'` for a pg `Client`, `'goodbye'`
   * for anything else.
   */
  readonly reuse?: ReuseOptions;
  /**
   * The object its checks are published for on the `sockstate:reuse-check`
   * and `sockstate:connection` channels (the `owner` field): your pool or
   * knex instance. Default: the validator function itself.
   */
  readonly owner?: object;
}

/** What a validator has done so far. */
export interface ValidatorStats {
  /** Connections checked. */
  readonly checked: number;
  /** Of those, found not reusable (the pool then destroys them). */
  readonly rejected: number;
  /** Rejections by reason (`closed`, `dataPending`, `stalled`, `silent`). */
  readonly rejectedByReason: Readonly<Record<Exclude<ReuseReason, 'idle'>, number>>;
  /**
   * Connections passed as reusable unchecked, because their socket cannot
   * be seen (pg-native, whose socket libpq owns; a custom stream; an
   * object that is no connection) or the kernel refused to probe it.
   */
  readonly unchecked: number;
  /** Why the last unchecked connection could not be checked, or null. */
  readonly lastProbeError: Error | null;
}

/**
 * A validation function for a pool: true when the connection can be
 * handed out, false when the pool should destroy it. Synchronous: tarn
 * (knex) and generic-pool both accept a plain boolean where they accept a
 * promise. It never throws: generic-pool does not catch a validator's
 * exception (its `acquire()` would never settle, or with an `async`
 * wrapper the rejection would go unhandled), and knex would discard every
 * connection it cannot check and open another, forever.
 */
export interface ConnectionValidator {
  /**
   * @param connection - A pg `Client`, a mysql2 `Connection` (callback or
   *   promise API) or a `net.Socket` / `tls.TLSSocket`.
   * @returns Whether the connection can be reused: true, counted in
   *   `stats.unchecked`, for a connection whose socket cannot be found
   *   (pg-native, a custom stream, anything else) or probed, as a pool
   *   without the validator would hand it out.
   */
  (connection: object): boolean;
  /** A snapshot of what it has checked and rejected. */
  readonly stats: ValidatorStats;
}

function describe(value: object): string {
  const ctor = (value as { constructor?: { name?: string } }).constructor;
  return ctor?.name ? `a ${ctor.name}` : 'an object';
}

/**
 * The socket of a database connection: a `net.Socket` itself, a pg
 * `Client`'s `connection.stream` (also where mysql2's promise wrapper keeps
 * its connection's stream: `connection.connection.stream`), or a mysql2
 * `Connection`'s `stream`. Over TLS that is the `tls.TLSSocket`.
 *
 * @param connection - The pooled connection.
 * @returns Its socket.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` when `connection` is not an
 *   object.
 * @throws SockstateError `ERR_SOCKSTATE_NO_SOCKET` when no socket can be
 *   found: a pg-native client (libpq owns its socket), a driver with a
 *   custom stream that is not a `net.Socket`, or an unknown object.
 */
export function socketOf(connection: object): net.Socket {
  if (connection instanceof net.Socket) return connection;
  if (connection === null || typeof connection !== 'object') {
    throw invalidArgType('connection', 'a pg Client, a mysql2 Connection or a net.Socket', connection);
  }
  const c = connection as { connection?: { stream?: unknown } | null; stream?: unknown };
  const inner = c.connection;
  if (inner !== null && typeof inner === 'object' && inner.stream instanceof net.Socket) return inner.stream;
  if (c.stream instanceof net.Socket) return c.stream;
  throw codedError(
    'ERR_SOCKSTATE_NO_SOCKET',
    `sockstate/pool: cannot find the socket of ${describe(connection)}: expected a pg Client (client.connection.stream), ` +
      'a mysql2 Connection (connection.stream) or a net.Socket; pg-native and custom streams cannot be checked',
  );
}

// What unread bytes on an idle connection mean depends on its protocol. A
// pg Client's connection (pg's Connection: startup and CopyIn messages)
// speaks PostgreSQL, whose server sends notifications unasked; anything
// else gets the default.
function unreadDataOf(connection: unknown): UnreadData {
  if (connection === null || typeof connection !== 'object') return 'goodbye';
  const inner = (connection as { connection?: unknown }).connection;
  if (inner === null || typeof inner !== 'object') return 'goodbye';
  const c = inner as { startup?: unknown; sendCopyFromChunk?: unknown };
  return typeof c.startup === 'function' && typeof c.sendCopyFromChunk === 'function' ? 'message' : 'goodbye';
}

/**
 * Makes a validation function for a generic pool, that uses the one reuse
 * rule of {@link checkReusable} on the connection's socket: for a pg
 * `Client` with `unreadData: 'message'` (a notification waiting is for pg
 * to read, the server's FATAL before its FIN still rules the client out),
 * for anything else with `'goodbye'`, unless `options.reuse` says.
 *
 * knex (tarn): `pool: { validate: createValidator() }`; knex destroys a
 * connection for which it returns false and acquires another.
 *
 * generic-pool: `createPool({ create, destroy, validate: createValidator() },
 * { testOnBorrow: true })`.
 *
 * It never throws (see {@link ConnectionValidator}): a connection it
 * cannot check is reusable as far as it knows, counted in
 * `stats.unchecked` with the reason in `stats.lastProbeError`.
 *
 * Each check is published on `sockstate:reuse-check`, and each connection
 * the first time it is seen on `sockstate:connection`, with `options.owner`
 * (or the validator) as owner; `validator.stats` counts what it rejected.
 *
 * @param options - See {@link ValidatorOptions}.
 * @returns A new {@link ConnectionValidator}.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError `ERR_OUT_OF_RANGE`
 *   for malformed options.
 */
export function createValidator(options?: ValidatorOptions): ConnectionValidator {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw invalidArgType('options', 'of type object', options);
  }
  const own = (key: string): unknown =>
    options !== undefined && Object.prototype.hasOwnProperty.call(options, key) ? (options as Record<string, unknown>)[key] : undefined;
  const reuse = own('reuse');
  const policies: Record<UnreadData, ReusePolicy | null> = {
    goodbye: reusePolicy(reuse, 'options.reuse', 'goodbye'),
    message: reusePolicy(reuse, 'options.reuse', 'message'),
  };
  const ownerOption = own('owner');
  if (ownerOption !== undefined && (ownerOption === null || (typeof ownerOption !== 'object' && typeof ownerOption !== 'function'))) {
    throw invalidArgType('options.owner', 'of type object', ownerOption);
  }
  let checked = 0;
  let rejected = 0;
  let unchecked = 0;
  let lastProbeError: Error | null = null;
  const rejectedByReason: Record<Exclude<ReuseReason, 'idle'>, number> = { closed: 0, dataPending: 0, stalled: 0, silent: 0 };
  const seen = new WeakSet<net.Socket>();
  const validate = ((connection: object): boolean => {
    let reason: ReuseReason;
    try {
      const socket = socketOf(connection);
      if (!seen.has(socket)) {
        seen.add(socket);
        publishConnection(owner, socket);
      }
      reason = reuseReasonWith(socket, policies[unreadDataOf(connection)]);
    } catch (err) {
      // As the pool would hand it out without a validator: false would only
      // make the pool destroy it and open another it cannot check either.
      unchecked += 1;
      lastProbeError = err as Error;
      return true;
    }
    checked += 1;
    publishReuseCheck(owner, reason === 'idle', reason);
    if (reason === 'idle') return true;
    rejected += 1;
    rejectedByReason[reason] += 1;
    return false;
  }) as ConnectionValidator;
  const owner = (ownerOption as object | undefined) ?? validate;
  Object.defineProperty(validate, 'stats', {
    enumerable: true,
    get: (): ValidatorStats => ({ checked, rejected, rejectedByReason: { ...rejectedByReason }, unchecked, lastProbeError }),
  });
  return validate;
}

/**
 * One check without counters: whether a pooled connection's socket can
 * carry the next query, with the validator's rule for unread bytes
 * (`'message'` for a pg `Client`, unless `options.unreadData` says).
 *
 * @param connection - A pg `Client`, a mysql2 `Connection` or a `net.Socket`.
 * @param options - Stricter reuse rules ({@link ReuseOptions}).
 * @returns Whether the connection can be reused.
 * @throws SockstateError `ERR_SOCKSTATE_NO_SOCKET` (see {@link socketOf});
 *   TypeError / RangeError for bad arguments.
 */
export function isConnectionReusable(connection: object, options?: ReuseOptions): boolean {
  const policy = reusePolicy(options, 'options', unreadDataOf(connection));
  return isReusableWith(socketOf(connection), policy);
}
