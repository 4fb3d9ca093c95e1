/**
 * The guarded undici classes, built over whichever copy of undici they are
 * given: `sockstate/undici` binds them to `require('undici')`, the tests to
 * each major (6, 7, 8) side by side.
 *
 * How the guard works, with undici's public options only: every guarded
 * dispatcher passes undici a `factory` that creates guarded Pools and
 * Clients (the Agent's, the BalancedPool's, the ProxyAgent's for its
 * origins and for the proxy). A Pool hands a request to a Client through
 * `dispatch()`; when that Client has nothing queued or in flight, the
 * request is about to be written on the Client's keep-alive socket, in the
 * same synchronous call. That is where the socket is checked. A stale one
 * is destroyed without an error: undici then re-queues the request, which
 * it has not written yet, on a fresh connection (its `onHttpSocketClose`);
 * an error argument would fail every queued request instead.
 *
 * A `factory` the user gives is called in place of the default one, and
 * what it returns is guarded too: a guarded dispatcher it creates without
 * `reuse` or `replay` of its own joins the caller's guard, and an undici
 * Client of the same undici, the factory's own or one a Pool it returned
 * connects, gets the same check.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { publishConnection, publishReuseCheck, reuseCheckChannel } from '../../policy/channel';
import { codedError, invalidArgType } from '../../errors';
import { type RequestWatch, releaseWatch, watchRequest } from '../../policy/replay';
import { checkReusableWith, isReusableWith, type ReusePolicy, reusePolicy } from '../../policy/reuse';
import { isReplayHandler, type ReplayGuard, type ReplayTarget, wrapForReplay } from './replay';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Constructor = new (...args: any[]) => object;

/** The parts of an undici module (6, 7 or 8) the guard builds on. */
export interface UndiciModule {
  readonly Agent: new (options?: object) => object;
  readonly Pool: new (origin: string | URL, options?: object) => object;
  readonly Client: new (origin: string | URL, options?: object) => object;
  /** Every undici 6 to 8 has it. */
  readonly BalancedPool?: Constructor;
  /** undici 7 and 8 only. */
  readonly RoundRobinPool?: Constructor;
  /** Every undici 6 to 8 has it. */
  readonly ProxyAgent?: Constructor;
  /** undici 6.15 and later. */
  readonly EnvHttpProxyAgent?: Constructor;
  /** undici 8 only: adapts a v1 handler (`onConnect`, `onHeaders`, …) to v2. */
  readonly Dispatcher1Wrapper?: { wrapHandler(handler: object): object };
}

// What one guard reports to: the user-visible object that owns the
// connections, its eviction and replay counters, and the validated rules.
interface Guard extends ReplayGuard {
  owner: object;
  destroyed: number;
  readonly policy: ReusePolicy | null;
  // Behind a proxy agent the options a Client sees are rewritten (the
  // absolute-form path, the tunnel): a replay goes to that Client only,
  // never back through the agent, which would rewrite them again.
  proxied: boolean;
}

// What a guarded Client keeps between its events: an eviction's
// 'disconnect' is held back, and so is the 'connect' of the connection
// that replaces it (see clientEmit).
interface Eviction {
  held: unknown[] | null;
  skipConnect: boolean;
}

interface Dispatcher {
  dispatch(opts: object, handler: object): boolean;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  emit(event: string | symbol, ...args: unknown[]): boolean;
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type DispatcherClass = new (...args: any[]) => Dispatcher;
type Factory = (origin: string | URL, options: object) => object;

/**
 * The classes {@link guardUndici} returns. Those of the optional ones the
 * given undici lacks are undefined (`RoundRobinPool` on undici 6).
 */
export interface GuardedUndici {
  readonly Agent: new (options?: object) => object;
  readonly Pool: new (origin: string | URL, options?: object) => object;
  readonly Client: new (origin: string | URL, options?: object) => object;
  readonly BalancedPool: (new (upstreams?: string | URL | readonly (string | URL)[], options?: object) => object) | undefined;
  readonly RoundRobinPool: (new (origin: string | URL, options?: object) => object) | undefined;
  readonly ProxyAgent: (new (options: string | URL | object) => object) | undefined;
  readonly EnvHttpProxyAgent: (new (options?: object) => object) | undefined;
}

/** The classes the guarded ones create their inner dispatchers as (see {@link bindPublic}). */
export interface PublicClasses {
  readonly Client?: Constructor;
  readonly Pool?: Constructor;
  readonly Agent?: Constructor;
  readonly ProxyAgent?: Constructor;
}

const built = new WeakMap<UndiciModule, GuardedUndici>();
const publicClasses = new WeakMap<UndiciModule, PublicClasses>();

/**
 * Has the dispatchers that guarded ones create be instances of the given
 * classes (subclasses of the guarded ones, such as the public
 * lazy classes of `sockstate/undici`), so that `client instanceof Client`
 * holds in a `'connect'` listener as it does with undici's own classes.
 *
 * @param undici - The undici module the classes were built over.
 * @param classes - The classes to construct as (`new.target`).
 */
export function bindPublic(undici: UndiciModule, classes: PublicClasses): void {
  publicClasses.set(undici, classes);
}

// The options object, checked the way the core checks arguments.
function optionsOf(options: unknown, name: string): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') throw invalidArgType(name, 'of type object', options);
  return options as Record<string, unknown>;
}

/**
 * Splits off `reuse` and `replay` (validated). A dispatcher created inside
 * another's factory (`enclosing`) without either of its own joins that
 * one's guard: its checks follow those rules and count there. `joined`
 * says so; otherwise the caller owns the new guard.
 */
function takeGuardOptions(options: unknown, name: string, enclosing: Guard | null): { rest: Record<string, unknown>; guard: Guard; joined: boolean } {
  const given = optionsOf(options, name);
  const rest: Record<string, unknown> = { ...given };
  delete rest.reuse;
  delete rest.replay;
  const reuse = Object.hasOwn(given, 'reuse') ? given.reuse : undefined;
  const replay = Object.hasOwn(given, 'replay') ? given.replay : undefined;
  const policy = reusePolicy(reuse, `${name}.reuse`);
  if (replay !== undefined && typeof replay !== 'boolean') throw invalidArgType(`${name}.replay`, 'of type boolean', replay);
  if (enclosing !== null && reuse === undefined && replay === undefined) return { rest, guard: enclosing, joined: true };
  const guard: Guard = { owner: null as unknown as object, destroyed: 0, policy, replay: replay !== false, replayed: 0, proxied: false };
  return { rest, guard, joined: false };
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
 * Builds (once per module) the guarded Agent, Pool, Client, BalancedPool,
 * RoundRobinPool, ProxyAgent and EnvHttpProxyAgent over the given undici.
 *
 * @param undici - The undici module (`require('undici')` or an alias).
 */
export function guardUndici(undici: UndiciModule): GuardedUndici {
  const cached = built.get(undici);
  if (cached !== undefined) return cached;

  const kSize = sizeSymbol(undici.Client);
  let kSocket: symbol | undefined;
  let warnedNoSocket = false;
  let warnedForeign = false;
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

  const BaseClient = undici.Client as unknown as DispatcherClass;

  // Every guarded object, user-visible or not, and the guard it counts in.
  const guards = new WeakMap<object, Guard>();
  // Every guarded Client, ours or adopted.
  const evictions = new WeakMap<object, Eviction>();
  // The guard whose factory is running: what it creates joins it.
  let enclosing: Guard | null = null;

  function within<T>(guard: Guard, make: () => T): T {
    const outer = enclosing;
    enclosing = guard;
    try {
      return make();
    } finally {
      enclosing = outer;
    }
  }

  function newClient(origin: string | URL, options: object, guard: Guard): object {
    return within(guard, () => Reflect.construct(Client, [origin, options], publicClasses.get(undici)?.Client ?? Client) as object);
  }

  function newPool(origin: string | URL, options: object, guard: Guard): object {
    return within(guard, () => Reflect.construct(Pool, [origin, options], publicClasses.get(undici)?.Pool ?? Pool) as object);
  }

  // A guarded class constructed as its public class, joining `guard`.
  function construct(Class: Constructor, name: keyof PublicClasses, args: unknown[], guard: Guard): object {
    return within(guard, () => Reflect.construct(Class, args, publicClasses.get(undici)?.[name] ?? Class) as object);
  }

  // undici's defaults, guarded: an Agent's (a single Client for
  // `connections: 1`), a Pool's, a BalancedPool's.
  const agentDefault =
    (guard: Guard): Factory =>
    (origin, options) =>
      (options as { connections?: unknown } | undefined)?.connections === 1 ? newClient(origin, options, guard) : newPool(origin, options, guard);
  const clientDefault =
    (guard: Guard): Factory =>
    (origin, options) =>
      newClient(origin, options, guard);
  const poolDefault =
    (guard: Guard): Factory =>
    (origin, options) =>
      newPool(origin, options, guard);

  // The factory to pass undici: the default, or the user's with what it
  // returns guarded. Anything but a function goes through as it is, for
  // undici to refuse with its own InvalidArgumentError.
  function factoryOf(given: unknown, guard: Guard, fallback: (guard: Guard) => Factory): unknown {
    if (given === undefined) return fallback(guard);
    if (typeof given !== 'function') return given;
    return function (this: unknown, ...args: unknown[]): unknown {
      const made = within(guard, () => Reflect.apply(given, this, args) as unknown);
      adopt(made, guard);
      return made;
    };
  }

  // Guards what a user's factory returned: ours already are; an undici
  // Client of this undici is adopted now; of anything else, the Clients it
  // reports in its 'connect' events, as a Pool does.
  function adopt(made: unknown, guard: Guard): void {
    if (made === null || typeof made !== 'object' || guards.has(made)) return;
    if (made instanceof BaseClient) {
      adoptClient(made, guard, false);
      return;
    }
    const on = (made as { on?: unknown }).on;
    if (typeof on !== 'function') return;
    on.call(made, 'connect', (_origin: unknown, targets: unknown) => {
      const client: unknown = Array.isArray(targets) ? targets[targets.length - 1] : undefined;
      if (client instanceof BaseClient) {
        adoptClient(client, guard, true);
      } else if (!warnedForeign && client !== null && typeof client === 'object') {
        warnedForeign = true;
        process.emitWarning(
          codedError('ERR_SOCKSTATE_PEER_UNSUPPORTED', 'sockstate/undici: a factory returned a dispatcher whose Clients are not of the undici sockstate loaded; their connections are not checked'),
        );
      }
    });
  }

  // Gives an undici Client the guarded Client's dispatch and emit, on the
  // instance. `connected`: adopted in its first 'connect', which the new
  // emit did not see.
  function adoptClient(client: Dispatcher, guard: Guard, connected: boolean): void {
    if (evictions.has(client)) return;
    guards.set(client, guard);
    evictions.set(client, { held: null, skipConnect: false });
    const { dispatch, emit } = client;
    Object.defineProperty(client, 'dispatch', {
      configurable: true,
      writable: true,
      value: (opts: object, handler: object): boolean =>
        clientDispatch(client, opts, handler, (o, h) => Reflect.apply(dispatch, client, [o, h]) as boolean),
    });
    Object.defineProperty(client, 'emit', {
      configurable: true,
      writable: true,
      value: (event: string | symbol, ...args: unknown[]): boolean => clientEmit(client, event, args, (e, a) => Reflect.apply(emit, client, [e, ...a]) as boolean),
    });
    if (connected) announce(client);
  }

  // An eviction (or a replay on this Client) is no disconnect the pool
  // should act on: undici would report it with an error, and undici 7's
  // Agent, counting connections by these events, would drop the Pool that
  // holds the re-queued request, so that its replacement connection were
  // thrown away after one request, and that Pool's late disconnect would
  // then be counted against the next one. The dead connection's
  // 'disconnect' and its replacement's 'connect' are both held back;
  // should the replacement fail, the held 'disconnect' goes out before the
  // 'connectionError'.
  function clientEmit(client: object, event: string | symbol, args: unknown[], base: (event: string | symbol, args: unknown[]) => boolean): boolean {
    const eviction = evictions.get(client);
    if (eviction !== undefined) {
      if (event === 'disconnect' && eviction.held === null && eviction.skipConnect) {
        eviction.held = args;
        return true;
      }
      if (event === 'connect') {
        announce(client);
        if (eviction.skipConnect) {
          eviction.skipConnect = false;
          eviction.held = null;
          return true;
        }
      } else if (event === 'connectionError' && eviction.skipConnect) {
        eviction.skipConnect = false;
        const held = eviction.held;
        eviction.held = null;
        if (held !== null) base('disconnect', held);
      }
    }
    return base(event, args);
  }

  // Each connection goes out on the connection channel, and the first one
  // tells whether this undici keeps the socket where the guard looks.
  function announce(client: object): void {
    kSocket ??= socketSymbol(client);
    const socket = kSocket === undefined ? undefined : (client as Record<symbol, unknown>)[kSocket];
    if (socket instanceof net.Socket) {
      publishConnection(guards.get(client)!.owner, socket);
    } else if (!warnedNoSocket) {
      warnedNoSocket = true;
      process.emitWarning(unsupportedUndici('the Client keeps no socket under Symbol(socket), so no connection is checked'));
    }
  }

  function clientDispatch(client: object, opts: object, handler: object, base: (opts: object, handler: object) => boolean): boolean {
    let o = opts;
    let h = handler;
    if (bridge !== null) [o, h] = bridge(o, h);
    if (kSocket !== undefined && (client as Record<symbol, number>)[kSize] === 0) {
      const socket = (client as Record<symbol, unknown>)[kSocket];
      // HTTP/2 is left alone: one session carries many streams, the peer
      // sends SETTINGS and PINGs on its own, so unread bytes do not mean
      // stale, and undici's h2 client handles GOAWAY itself.
      if (socket instanceof net.Socket && !socket.destroyed && (socket as { alpnProtocol?: unknown }).alpnProtocol !== 'h2') {
        const guard = guards.get(client)!;
        // The byte counts are read before the check: a FIN that lands
        // between the two is then seen by the check, not missed by both.
        // A connection that carried no request yet behaves as before.
        const watch = socket.bytesWritten > 0 && !isReplayHandler(h) ? watchOf(socket) : null;
        if (checkBeforeWrite(guard, socket)) {
          evictions.get(client)!.skipConnect = true;
          if (watch !== null) releaseWatch(watch);
        } else if (watch !== null) {
          const eviction = evictions.get(client)!;
          const self = client as unknown as ReplayTarget;
          [o, h] = wrapForReplay(o, h, watch, self, guard.proxied ? self : (guard.owner as ReplayTarget), guard, () => {
            eviction.skipConnect = true;
          });
        }
      }
    }
    return base(o, h);
  }

  // What every guarded class adds to undici's: the v1 handler bridge on
  // undici 8, and the guard's counters.
  function guarded<T extends DispatcherClass>(Base: T) {
    return class extends Base {
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
    };
  }

  // Registers a new guarded object; it owns the guard unless it joined one.
  function own(self: object, guard: Guard, joined: boolean): void {
    if (!joined) guard.owner = self;
    guards.set(self, guard);
  }

  class Client extends guarded(BaseClient) {
    constructor(origin: string | URL, options?: object) {
      const { rest, guard, joined } = takeGuardOptions(options, 'options', enclosing);
      super(origin, rest);
      own(this, guard, joined);
      evictions.set(this, { held: null, skipConnect: false });
    }

    override emit(event: string | symbol, ...args: unknown[]): boolean {
      return clientEmit(this, event, args, (e, a) => super.emit(e, ...a));
    }

    override dispatch(opts: object, handler: object): boolean {
      // The guarded() layer below would bridge again: go past it.
      return clientDispatch(this, opts, handler, (o, h) => BaseClient.prototype.dispatch.call(this, o, h));
    }
  }

  class Pool extends guarded(undici.Pool as unknown as DispatcherClass) {
    constructor(origin: string | URL, options?: object) {
      const { rest, guard, joined } = takeGuardOptions(options, 'options', enclosing);
      super(origin, { ...rest, factory: factoryOf(rest.factory, guard, clientDefault) });
      own(this, guard, joined);
    }
  }

  class Agent extends guarded(undici.Agent as unknown as DispatcherClass) {
    constructor(options?: object) {
      const { rest, guard, joined } = takeGuardOptions(options, 'options', enclosing);
      super({ ...rest, factory: factoryOf(rest.factory, guard, agentDefault) });
      own(this, guard, joined);
    }
  }

  const optional = <K extends keyof UndiciModule>(name: K): DispatcherClass | undefined => undici[name] as DispatcherClass | undefined;

  const BaseBalanced = optional('BalancedPool');
  const BalancedPool =
    BaseBalanced &&
    class BalancedPool extends guarded(BaseBalanced) {
      constructor(upstreams?: unknown, options?: object) {
        const { rest, guard, joined } = takeGuardOptions(options, 'options', enclosing);
        super(upstreams, { ...rest, factory: factoryOf(rest.factory, guard, poolDefault) });
        own(this, guard, joined);
      }
    };

  const BaseRoundRobin = optional('RoundRobinPool');
  const RoundRobinPool =
    BaseRoundRobin &&
    class RoundRobinPool extends guarded(BaseRoundRobin) {
      constructor(origin: string | URL, options?: object) {
        const { rest, guard, joined } = takeGuardOptions(options, 'options', enclosing);
        super(origin, { ...rest, factory: factoryOf(rest.factory, guard, clientDefault) });
        own(this, guard, joined);
      }
    };

  // A proxy agent's options with every dispatcher it creates guarded: the
  // origins' (`factory`: through a CONNECT tunnel, or to the proxy for
  // plain HTTP without one) and the proxy's (`clientFactory`, for CONNECT).
  function proxyOptions(rest: Record<string, unknown>, guard: Guard): Record<string, unknown> {
    guard.proxied = true;
    return { ...rest, factory: factoryOf(rest.factory, guard, agentDefault), clientFactory: factoryOf(rest.clientFactory, guard, poolDefault) };
  }

  const BaseProxy = optional('ProxyAgent');
  const ProxyAgent =
    BaseProxy &&
    class ProxyAgent extends guarded(BaseProxy) {
      constructor(options: unknown) {
        // A proxy URL alone is `{ uri }`; what is neither goes to undici,
        // which refuses it with its own error.
        const given = typeof options === 'string' || options instanceof URL ? { uri: options } : options;
        const taken = given !== null && typeof given === 'object' ? takeGuardOptions(given, 'options', enclosing) : null;
        super(taken === null ? given : proxyOptions(taken.rest, taken.guard));
        if (taken !== null) own(this, taken.guard, taken.joined);
      }
    };

  // undici's EnvHttpProxyAgent keeps the three agents it dispatches to
  // under these symbols, from undici 6 to 8.
  const envSlots = ['no proxy agent', 'http proxy agent', 'https proxy agent'];

  // undici creates an EnvHttpProxyAgent's agents from its own classes:
  // guarded through the factories, but not instances of sockstate's Agent
  // and ProxyAgent, as undici's are of its own. They are replaced, as
  // undici made them, before any of them connected.
  function useGuardedAgents(env: object, rest: Record<string, unknown>, guard: Guard): void {
    const self = env as Record<symbol, { close(): Promise<unknown> } | undefined>;
    const slots = envSlots.map((d) => Object.getOwnPropertySymbols(env).find((sym) => sym.description === d));
    if (!ProxyAgent || slots.some((sym) => sym === undefined || self[sym] === undefined)) return;
    const [kNo, kHttp, kHttps] = slots as [symbol, symbol, symbol];
    const stock = new Set([self[kNo]!, self[kHttp]!, self[kHttps]!]);
    const { httpProxy, httpsProxy, noProxy: _noProxy, ...agentOptions } = rest;
    const proxyAgent = (uri: unknown): object => construct(ProxyAgent, 'ProxyAgent', [{ ...agentOptions, uri }], guard);
    const direct = construct(Agent, 'Agent', [agentOptions], guard);
    const http = self[kHttp] === self[kNo] ? direct : proxyAgent(httpProxy ?? process.env.http_proxy ?? process.env.HTTP_PROXY);
    const https = self[kHttps] === self[kHttp] ? http : proxyAgent(httpsProxy ?? process.env.https_proxy ?? process.env.HTTPS_PROXY);
    Object.assign(self, { [kNo]: direct, [kHttp]: http, [kHttps]: https });
    for (const agent of stock) agent.close().catch(() => {});
  }

  const BaseEnvProxy = optional('EnvHttpProxyAgent');
  const EnvHttpProxyAgent =
    BaseEnvProxy &&
    class EnvHttpProxyAgent extends guarded(BaseEnvProxy) {
      constructor(options?: object) {
        const { rest, guard, joined } = takeGuardOptions(options, 'options', enclosing);
        super(proxyOptions(rest, guard));
        own(this, guard, joined);
        useGuardedAgents(this, rest, guard);
      }
    };

  const classes = { Agent, Pool, Client, BalancedPool, RoundRobinPool, ProxyAgent, EnvHttpProxyAgent } as unknown as GuardedUndici;
  built.set(undici, classes);
  return classes;
}
