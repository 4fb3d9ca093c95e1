/**
 * The guarded undici classes, built over whichever copy of undici they are
 * given: `sockstate/undici` binds them to `require('undici')`, the tests to
 * each major (6, 7, 8) side by side.
 *
 * How the guard works, with undici's public options only: the Agent's
 * `factory` creates a Pool whose `factory` creates a Client subclass. A
 * Pool hands a request to a Client through `dispatch()`; when that Client
 * has nothing queued or in flight, the request is about to be written on
 * the Client's keep-alive socket, in the same synchronous call. That is
 * where the socket is checked. A stale one is destroyed without an error:
 * undici then re-queues the request, which it has not written yet, on a
 * fresh connection (its `onHttpSocketClose`); an error argument would fail
 * every queued request instead.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { publishConnection, publishReuseCheck, reuseCheckChannel } from '../channel';
import { codedError, invalidArgType, invalidArgValue } from '../errors';
import { type RequestWatch, releaseWatch, watchRequest } from '../replay';
import { checkReusableWith, isReusableWith, type ReusePolicy, reusePolicy } from '../reuse';
import { isReplayHandler, type ReplayGuard, type ReplayTarget, wrapForReplay } from './replay';

/** The parts of an undici module (6, 7 or 8) the guard builds on. */
export interface UndiciModule {
  readonly Agent: new (options?: object) => object;
  readonly Pool: new (origin: string | URL, options?: object) => object;
  readonly Client: new (origin: string | URL, options?: object) => object;
  /** undici 8 only: adapts a v1 handler (`onConnect`, `onHeaders`, …) to v2. */
  readonly Dispatcher1Wrapper?: { wrapHandler(handler: object): object };
}

// What one guard reports to: the user-visible object that owns the
// connections, its eviction and replay counters, and the validated rules.
interface Guard extends ReplayGuard {
  owner: object;
  destroyed: number;
  readonly policy: ReusePolicy | null;
}

// What a guarded Client keeps between its events: an eviction's
// 'disconnect' is held back, and so is the 'connect' of the connection
// that replaces it (see Client.emit).
interface Eviction {
  held: unknown[] | null;
  skipConnect: boolean;
}

interface Dispatcher {
  dispatch(opts: object, handler: object): boolean;
  on(event: string, listener: () => void): unknown;
  emit(event: string | symbol, ...args: unknown[]): boolean;
}
type Factory = (origin: string | URL, options: object) => object;

/** The classes {@link guardUndici} returns. */
export interface GuardedUndici {
  readonly Agent: new (options?: object) => object;
  readonly Pool: new (origin: string | URL, options?: object) => object;
  readonly Client: new (origin: string | URL, options?: object) => object;
}

const built = new WeakMap<UndiciModule, GuardedUndici>();

// The options object, checked the way the core checks arguments.
function optionsOf(options: unknown, name: string): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') throw invalidArgType(name, 'of type object', options);
  return options as Record<string, unknown>;
}

// Splits off `reuse` and `replay` (validated) and refuses a `factory`: a
// dispatcher the caller creates could not be guarded, so accepting one
// would drop the guard without a word.
function takeGuardOptions(options: unknown, name: string): { rest: Record<string, unknown>; guard: Guard } {
  const given = optionsOf(options, name);
  const rest: Record<string, unknown> = { ...given };
  delete rest.reuse;
  delete rest.replay;
  if (Object.hasOwn(given, 'factory') && given.factory !== undefined) {
    throw invalidArgValue(`${name}.factory`, 'is not supported: sockstate creates the pools and clients it guards');
  }
  delete rest.factory;
  const policy = reusePolicy(Object.hasOwn(given, 'reuse') ? given.reuse : undefined, `${name}.reuse`);
  const replay = Object.hasOwn(given, 'replay') ? given.replay : undefined;
  if (replay !== undefined && typeof replay !== 'boolean') throw invalidArgType(`${name}.replay`, 'of type boolean', replay);
  const guard: Guard = { owner: null as unknown as object, destroyed: 0, policy, replay: replay !== false, replayed: 0 };
  return { rest, guard };
}

// A coded error for an undici whose internals the guard cannot find.
function unsupportedUndici(what: string): Error {
  return codedError('ERR_SOCKSTATE_PEER_UNSUPPORTED', `sockstate/undici: ${what}: this undici version is not supported (>=6 <9)`);
}

// The symbol-keyed getter `Symbol('size')` (requests queued plus in
// flight) that every undici Client from 6 to 8 defines on its prototype.
function sizeSymbol(Client: UndiciModule['Client']): symbol {
  for (let proto = Client.prototype as object | null; proto !== null; proto = Object.getPrototypeOf(proto) as object | null) {
    for (const sym of Object.getOwnPropertySymbols(proto)) {
      if (sym.description === 'size' && typeof Object.getOwnPropertyDescriptor(proto, sym)?.get === 'function') return sym;
    }
  }
  throw unsupportedUndici('the Client has no size getter');
}

// The connection's socket: undici 6 to 8 keep it under `Symbol('socket')`
// on the Client while connected. Found on the instance once it connects.
function socketSymbol(client: object): symbol | undefined {
  for (const sym of Object.getOwnPropertySymbols(client)) {
    if (sym.description === 'socket' && (client as Record<symbol, unknown>)[sym] instanceof net.Socket) return sym;
  }
  return undefined;
}

/**
 * Checks an idle socket right before a request goes out on it. True when
 * it was found stale and destroyed.
 */
function checkBeforeWrite(guard: Guard, socket: net.Socket): boolean {
  let reusable: boolean;
  let failure: unknown;
  try {
    reusable = isReusableWith(socket, guard.policy);
  } catch (err) {
    // Not a verdict: the check itself failed (no usable fd). The socket
    // cannot be trusted; the error is reported, not passed to undici,
    // which would fail every queued request with it.
    failure = err;
    reusable = false;
  }
  if (reuseCheckChannel.hasSubscribers) {
    let reason = 'idle';
    if (failure !== undefined) reason = 'error';
    else if (!reusable) {
      const verdict = checkReusableWith(socket, guard.policy);
      reason = verdict.reusable ? 'closed' : verdict.reason;
    }
    publishReuseCheck(guard.owner, reusable, reason);
  }
  if (reusable) return false;
  if (failure !== undefined) process.emitWarning(failure as Error);
  socket.destroy();
  guard.destroyed += 1;
  return true;
}

// The byte counts for a request about to go out, or null when they cannot
// be read: then the request is simply not replayable.
function watchOf(socket: net.Socket): RequestWatch | null {
  try {
    return watchRequest(socket);
  } catch {
    return null;
  }
}

/**
 * Builds (once per module) the guarded Agent, Pool and Client over the
 * given undici.
 *
 * @param undici - The undici module (`require('undici')` or an alias).
 */
export function guardUndici(undici: UndiciModule): GuardedUndici {
  const cached = built.get(undici);
  if (cached !== undefined) return cached;

  const kSize = sizeSymbol(undici.Client);
  let kSocket: symbol | undefined;
  let warnedNoSocket = false;
  const wrapper = undici.Dispatcher1Wrapper;

  // undici 8 speaks only the v2 handler interface; Node's bundled fetch
  // before Node 26 (undici 6 and 7) passes v1 handlers. Bridge them as
  // undici 8's own Dispatcher1Wrapper does, HTTP/2 off included (v1
  // consumers do not support it).
  const bridge =
    wrapper === undefined
      ? null
      : (opts: object, handler: object): [object, object] => {
          if (handler === null || typeof handler !== 'object' || typeof (handler as { onRequestStart?: unknown }).onRequestStart === 'function') {
            return [opts, handler];
          }
          const o = (opts as { allowH2?: unknown }).allowH2 === false ? opts : { ...opts, allowH2: false };
          return [o, wrapper.wrapHandler(handler)];
        };

  const BaseClient = undici.Client as new (origin: string | URL, options?: object) => Dispatcher;
  const BasePool = undici.Pool as new (origin: string | URL, options?: object) => Dispatcher;
  const BaseAgent = undici.Agent as new (options?: object) => Dispatcher;

  const guards = new WeakMap<object, Guard>();
  const evictions = new WeakMap<object, Eviction>();

  function newClient(origin: string | URL, options: object, guard: Guard): object {
    return Reflect.construct(Client, [origin, options, guard]) as object;
  }

  class Client extends BaseClient {
    constructor(origin: string | URL, options?: object, guard?: Guard) {
      let rest: object;
      let own: Guard | undefined = guard;
      if (own === undefined) {
        const taken = takeGuardOptions(options, 'options');
        rest = taken.rest;
        own = taken.guard;
      } else {
        rest = options ?? {};
      }
      super(origin, rest);
      if (own.owner === null) own.owner = this;
      guards.set(this, own);
      evictions.set(this, { held: null, skipConnect: false });
    }

    // An eviction (or a replay on this Client) is no disconnect the pool
    // should act on: undici would report it with an error, and undici 7's
    // Agent, counting connections by these events, would drop the Pool
    // that holds the re-queued request, so that its replacement connection
    // were thrown away after one request, and that Pool's late disconnect
    // would then be counted against the next one. The dead connection's
    // 'disconnect' and its replacement's 'connect' are both held back;
    // should the replacement fail, the held 'disconnect' goes out before
    // the 'connectionError'.
    override emit(event: string | symbol, ...args: unknown[]): boolean {
      const eviction = evictions.get(this);
      if (eviction !== undefined) {
        if (event === 'disconnect' && eviction.held === null && eviction.skipConnect) {
          eviction.held = args;
          return true;
        }
        if (event === 'connect') {
          this.announce();
          if (eviction.skipConnect) {
            eviction.skipConnect = false;
            eviction.held = null;
            return true;
          }
        } else if (event === 'connectionError' && eviction.skipConnect) {
          eviction.skipConnect = false;
          const held = eviction.held;
          eviction.held = null;
          if (held !== null) super.emit('disconnect', ...held);
        }
      }
      return super.emit(event, ...args);
    }

    // Each connection goes out on the connection channel, and the first
    // one tells whether this undici keeps the socket where the guard looks.
    private announce(): void {
      kSocket ??= socketSymbol(this);
      const socket = kSocket === undefined ? undefined : (this as unknown as Record<symbol, unknown>)[kSocket];
      if (socket instanceof net.Socket) {
        publishConnection(guards.get(this)!.owner, socket);
      } else if (!warnedNoSocket) {
        warnedNoSocket = true;
        process.emitWarning(unsupportedUndici('the Client keeps no socket under Symbol(socket), so no connection is checked'));
      }
    }

    override dispatch(opts: object, handler: object): boolean {
      let o = opts;
      let h = handler;
      if (bridge !== null) [o, h] = bridge(o, h);
      if (kSocket !== undefined && (this as unknown as Record<symbol, number>)[kSize] === 0) {
        const socket = (this as unknown as Record<symbol, unknown>)[kSocket];
        // HTTP/2 is left alone: one session carries many streams, the
        // peer sends SETTINGS and PINGs on its own, so unread bytes do not
        // mean stale, and undici's h2 client handles GOAWAY itself.
        if (socket instanceof net.Socket && !socket.destroyed && (socket as { alpnProtocol?: unknown }).alpnProtocol !== 'h2') {
          const guard = guards.get(this)!;
          // The byte counts are read before the check: a FIN that lands
          // between the two is then seen by the check, not missed by both.
          // A connection that carried no request yet behaves as before.
          const watch = socket.bytesWritten > 0 && !isReplayHandler(h) ? watchOf(socket) : null;
          if (checkBeforeWrite(guard, socket)) {
            evictions.get(this)!.skipConnect = true;
            if (watch !== null) releaseWatch(watch);
          } else if (watch !== null) {
            const eviction = evictions.get(this)!;
            [o, h] = wrapForReplay(o, h, watch, this as unknown as ReplayTarget, guard.owner as ReplayTarget, guard, () => {
              eviction.skipConnect = true;
            });
          }
        }
      }
      return super.dispatch(o, h);
    }

    /** Keep-alive sockets found stale and destroyed before a request was written on them. */
    get staleSocketsDestroyed(): number {
      return guards.get(this)!.destroyed;
    }

    /** Requests sent again because the kernel proved the server never received them. */
    get replayedRequests(): number {
      return guards.get(this)!.replayed;
    }
  }

  class Pool extends BasePool {
    constructor(origin: string | URL, options?: object, guard?: Guard) {
      let rest: Record<string, unknown>;
      let own: Guard | undefined = guard;
      if (own === undefined) {
        const taken = takeGuardOptions(options, 'options');
        rest = taken.rest;
        own = taken.guard;
      } else {
        rest = { ...(options as Record<string, unknown>) };
      }
      const g = own;
      const factory: Factory = (o, opts) => newClient(o, opts, g);
      super(origin, { ...rest, factory });
      if (g.owner === null) g.owner = this;
      guards.set(this, g);
    }

    override dispatch(opts: object, handler: object): boolean {
      if (bridge === null) return super.dispatch(opts, handler);
      const [o, h] = bridge(opts, handler);
      return super.dispatch(o, h);
    }

    /** Keep-alive sockets found stale and destroyed before a request was written on them. */
    get staleSocketsDestroyed(): number {
      return guards.get(this)!.destroyed;
    }

    /** Requests sent again because the kernel proved the server never received them. */
    get replayedRequests(): number {
      return guards.get(this)!.replayed;
    }
  }

  class Agent extends BaseAgent {
    constructor(options?: object) {
      const { rest, guard: g } = takeGuardOptions(options, 'options');
      // undici's defaultFactory: a single Client for `connections: 1`.
      const factory: Factory = (origin, opts) =>
        (opts as { connections?: unknown }).connections === 1
          ? newClient(origin, opts, g)
          : (Reflect.construct(Pool, [origin, opts, g]) as object);
      super({ ...rest, factory });
      g.owner = this;
      guards.set(this, g);
    }

    override dispatch(opts: object, handler: object): boolean {
      if (bridge === null) return super.dispatch(opts, handler);
      const [o, h] = bridge(opts, handler);
      return super.dispatch(o, h);
    }

    /** Keep-alive sockets found stale and destroyed before a request was written on them. */
    get staleSocketsDestroyed(): number {
      return guards.get(this)!.destroyed;
    }

    /** Requests sent again because the kernel proved the server never received them. */
    get replayedRequests(): number {
      return guards.get(this)!.replayed;
    }
  }

  const classes: GuardedUndici = { Agent, Pool, Client };
  built.set(undici, classes);
  return classes;
}
