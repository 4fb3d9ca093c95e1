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
import { invalidArgType, invalidArgValue } from '../errors';
import { checkReusableWith, isReusableWith, type ReusePolicy, reusePolicy } from '../reuse';

/** The parts of an undici module (6, 7 or 8) the guard builds on. */
export interface UndiciModule {
  readonly Agent: new (options?: object) => object;
  readonly Pool: new (origin: string | URL, options?: object) => object;
  readonly Client: new (origin: string | URL, options?: object) => object;
  /** undici 8 only: adapts a v1 handler (`onConnect`, `onHeaders`, …) to v2. */
  readonly Dispatcher1Wrapper?: { wrapHandler(handler: object): object };
}

// What one guard reports to: the user-visible object that owns the
// connections, its eviction counter, and the validated reuse rules.
interface Guard {
  owner: object;
  destroyed: number;
  readonly policy: ReusePolicy | null;
}

interface Dispatcher {
  dispatch(opts: object, handler: object): boolean;
  on(event: string, listener: () => void): unknown;
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

// Splits off `reuse` (validated) and refuses a `factory`: a dispatcher the
// caller creates could not be guarded, so accepting one would drop the
// guard without a word.
function takeGuardOptions(options: unknown, name: string): { rest: Record<string, unknown>; policy: ReusePolicy | null } {
  const given = optionsOf(options, name);
  const rest: Record<string, unknown> = { ...given };
  delete rest.reuse;
  if (Object.hasOwn(given, 'factory') && given.factory !== undefined) {
    throw invalidArgValue(`${name}.factory`, 'is not supported: sockstate creates the pools and clients it guards');
  }
  delete rest.factory;
  const policy = reusePolicy(Object.hasOwn(given, 'reuse') ? given.reuse : undefined, `${name}.reuse`);
  return { rest, policy };
}

// The symbol-keyed getter `Symbol('size')` (requests queued plus in
// flight) that every undici Client from 6 to 8 defines on its prototype.
function sizeSymbol(Client: UndiciModule['Client']): symbol {
  for (let proto = Client.prototype as object | null; proto !== null; proto = Object.getPrototypeOf(proto) as object | null) {
    for (const sym of Object.getOwnPropertySymbols(proto)) {
      if (sym.description === 'size' && typeof Object.getOwnPropertyDescriptor(proto, sym)?.get === 'function') return sym;
    }
  }
  throw new Error('undici Client without a size getter: this undici version is not supported (>=6 <9)');
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
        own = { owner: null as unknown as object, destroyed: 0, policy: taken.policy };
      } else {
        rest = options ?? {};
      }
      super(origin, rest);
      if (own.owner === null) own.owner = this;
      const g = own;
      guards.set(this, g);
      this.on('connect', () => {
        kSocket ??= socketSymbol(this);
        const socket = kSocket === undefined ? undefined : (this as unknown as Record<symbol, unknown>)[kSocket];
        if (socket instanceof net.Socket) publishConnection(g.owner, socket);
      });
    }

    override dispatch(opts: object, handler: object): boolean {
      if (kSocket !== undefined && (this as unknown as Record<symbol, number>)[kSize] === 0) {
        const socket = (this as unknown as Record<symbol, unknown>)[kSocket];
        // HTTP/2 is left alone: one session carries many streams, the
        // peer sends SETTINGS and PINGs on its own, so unread bytes do not
        // mean stale, and undici's h2 client handles GOAWAY itself.
        if (socket instanceof net.Socket && !socket.destroyed && (socket as { alpnProtocol?: unknown }).alpnProtocol !== 'h2') {
          checkBeforeWrite(guards.get(this)!, socket);
        }
      }
      if (bridge === null) return super.dispatch(opts, handler);
      const [o, h] = bridge(opts, handler);
      return super.dispatch(o, h);
    }

    /** Keep-alive sockets found stale and destroyed before a request was written on them. */
    get staleSocketsDestroyed(): number {
      return guards.get(this)!.destroyed;
    }
  }

  class Pool extends BasePool {
    constructor(origin: string | URL, options?: object, guard?: Guard) {
      let rest: Record<string, unknown>;
      let own: Guard | undefined = guard;
      if (own === undefined) {
        const taken = takeGuardOptions(options, 'options');
        rest = taken.rest;
        own = { owner: null as unknown as object, destroyed: 0, policy: taken.policy };
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
  }

  class Agent extends BaseAgent {
    constructor(options?: object) {
      const { rest, policy } = takeGuardOptions(options, 'options');
      const g: Guard = { owner: null as unknown as object, destroyed: 0, policy };
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
  }

  const classes: GuardedUndici = { Agent, Pool, Client };
  built.set(undici, classes);
  return classes;
}
