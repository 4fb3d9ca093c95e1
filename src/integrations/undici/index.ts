/**
 * `sockstate/undici`: undici dispatchers, and through them Node's built-in
 * `fetch()`, that never write a request on a keep-alive connection the
 * kernel already knows is dead.
 *
 * Each class is a drop-in for undici's of the same name (`Agent`, `Pool`,
 * `Client`, `BalancedPool`, `RoundRobinPool`, `ProxyAgent`,
 * `EnvHttpProxyAgent`): same options, `factory` included, and the
 * dispatchers it creates inside are instances of these classes.
 *
 * undici is an optional peer dependency (`>=6 <9`). Requiring this module
 * loads nothing; the first construction of any of its classes loads
 * `undici`, or throws `ERR_SOCKSTATE_PEER_MISSING` when it is not
 * installed and `ERR_SOCKSTATE_PEER_UNSUPPORTED` when it cannot run here.
 * Loading undici leaves the global dispatcher as it was.
 *
 * @packageDocumentation
 */
import type * as undici from 'undici';
import { codedError } from '../../errors';
import { requirePeer } from '../peer';
import type { ReuseOptions } from '../../policy/reuse';
import { bindPublic, type GuardedUndici, guardUndici, type UndiciModule } from './guard';

export type { ReuseOptions } from '../../policy/reuse';

/** What the guarded dispatchers add to undici's options. */
export interface GuardOptions {
  /**
   * Stricter reuse rules (`maxSilentMs`, `allowStalled`), as for
   * `isReusable(socket, options)`. Without them each check is one
   * `poll(2)`.
   */
  readonly reuse?: ReuseOptions;
  /**
   * Whether a request that failed because its reused connection died is
   * sent again, once, on a new connection, when the kernel proves the
   * server never received it (see `isReplaySafe()`): whatever its method,
   * when its body can be sent again (none, a string, a `Buffer`, a
   * `Uint8Array` or `ArrayBuffer`, or an async iterable such as every
   * `fetch()` body, kept up to 64 KiB and read to its end). Default `true`:
   * it is safe by construction. With `false`, or for a body that cannot be
   * sent again, the error reaches the caller and `isReplaySafe(err)` is
   * true.
   */
  readonly replay?: boolean;
}

/**
 * {@link Agent} options: `undici.Agent.Options` plus {@link GuardOptions}.
 * A `factory` is called as undici calls it, and what it returns is guarded
 * too: a sockstate dispatcher it creates without `reuse` or `replay` of its
 * own follows this one's and counts here; an undici `Client`, or the
 * Clients an undici `Pool` it returns connects, get the same check, when
 * they come from the `undici` that `sockstate/undici` loaded (for any
 * other, a warning says their connections are not checked).
 */
export type AgentOptions = undici.Agent.Options & GuardOptions;
/** {@link Pool} options: `undici.Pool.Options` plus {@link GuardOptions}; `factory` as for {@link AgentOptions}. */
export type PoolOptions = undici.Pool.Options & GuardOptions;
/** {@link Client} options: `undici.Client.Options` plus {@link GuardOptions}. */
export type ClientOptions = undici.Client.Options & GuardOptions;
/** {@link BalancedPool} options: `undici.Pool.Options` plus {@link GuardOptions}; `factory` as for {@link AgentOptions}. */
export type BalancedPoolOptions = undici.Pool.Options & GuardOptions;
/** {@link RoundRobinPool} options: `undici.RoundRobinPool.Options` plus {@link GuardOptions}; `factory` as for {@link AgentOptions}. */
export type RoundRobinPoolOptions = undici.RoundRobinPool.Options & GuardOptions;
/**
 * {@link ProxyAgent} options: `undici.ProxyAgent.Options` plus
 * {@link GuardOptions}; `factory` and `clientFactory` as `factory` for
 * {@link AgentOptions}.
 */
export type ProxyAgentOptions = undici.ProxyAgent.Options & GuardOptions;
/** {@link EnvHttpProxyAgent} options: `undici.EnvHttpProxyAgent.Options` plus {@link GuardOptions}; factories as for {@link ProxyAgentOptions}. */
export type EnvHttpProxyAgentOptions = undici.EnvHttpProxyAgent.Options & GuardOptions;

/** What every guarded dispatcher exposes besides undici's own interface. */
export interface Guarded {
  /**
   * Keep-alive sockets found not reusable (closed or reset by the peer,
   * holding bytes nobody asked for, or, with {@link GuardOptions.reuse},
   * stalled or silent) and destroyed right before a request would have
   * been written on them, since this dispatcher was created. Each such
   * request went out on a fresh connection instead.
   */
  readonly staleSocketsDestroyed: number;
  /**
   * Requests sent again, once each, on a new connection, because their
   * reused connection died and the kernel proved the server never received
   * them (see {@link GuardOptions.replay}), since this dispatcher was
   * created. Each one is also published on the `'sockstate:replay'`
   * diagnostics channel.
   */
  readonly replayedRequests: number;
}

/** A guarded `undici.Agent`; see {@link Agent}. */
export interface Agent extends undici.Agent, Guarded {}
/** A guarded `undici.Pool`; see {@link Pool}. */
export interface Pool extends undici.Pool, Guarded {}
/** A guarded `undici.Client`; see {@link Client}. */
export interface Client extends undici.Client, Guarded {}
/** A guarded `undici.BalancedPool`; see {@link BalancedPool}. */
export interface BalancedPool extends undici.BalancedPool, Guarded {}
/** A guarded `undici.RoundRobinPool`; see {@link RoundRobinPool}. */
export interface RoundRobinPool extends undici.RoundRobinPool, Guarded {}
/** A guarded `undici.ProxyAgent`; see {@link ProxyAgent}. */
export interface ProxyAgent extends undici.ProxyAgent, Guarded {}
/** A guarded `undici.EnvHttpProxyAgent`; see {@link EnvHttpProxyAgent}. */
export interface EnvHttpProxyAgent extends undici.EnvHttpProxyAgent, Guarded {}

/** The constructor of {@link Agent}. */
export interface AgentConstructor {
  /**
   * @param options - `undici.Agent` options plus {@link GuardOptions}.
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError
   *   `ERR_OUT_OF_RANGE` for bad `options`, `options.reuse` or
   *   `options.replay`; undici's own `InvalidArgumentError`
   *   (`UND_ERR_INVALID_ARG`) for bad undici options, `factory` included.
   * @throws SockstateError `ERR_SOCKSTATE_PEER_MISSING` when undici is not
   *   installed; `ERR_SOCKSTATE_PEER_UNSUPPORTED` when the installed undici
   *   is outside `>=6 <9`, cannot run on this Node (undici 8 on Node 20),
   *   or has no such class (`RoundRobinPool` on undici 6).
   */
  new (options?: AgentOptions): Agent;
  readonly prototype: Agent;
}
/** The constructor of {@link Pool}. */
export interface PoolConstructor {
  /**
   * @param origin - The origin, as for `undici.Pool`.
   * @param options - `undici.Pool` options plus {@link GuardOptions}.
   * @throws As {@link AgentConstructor}.
   */
  new (origin: string | URL, options?: PoolOptions): Pool;
  readonly prototype: Pool;
}
/** The constructor of {@link Client}. */
export interface ClientConstructor {
  /**
   * @param origin - The origin, as for `undici.Client`.
   * @param options - `undici.Client` options plus {@link GuardOptions}.
   * @throws As {@link AgentConstructor}.
   */
  new (origin: string | URL, options?: ClientOptions): Client;
  readonly prototype: Client;
}
/** The constructor of {@link BalancedPool}. */
export interface BalancedPoolConstructor {
  /**
   * @param upstreams - The upstream origins, as for `undici.BalancedPool`.
   * @param options - `undici.Pool` options plus {@link GuardOptions}.
   * @throws As {@link AgentConstructor}.
   */
  new (upstreams?: string | URL | readonly (string | URL)[], options?: BalancedPoolOptions): BalancedPool;
  readonly prototype: BalancedPool;
}
/** The constructor of {@link RoundRobinPool}. */
export interface RoundRobinPoolConstructor {
  /**
   * @param origin - The origin, as for `undici.RoundRobinPool`.
   * @param options - `undici.RoundRobinPool` options plus {@link GuardOptions}.
   * @throws As {@link AgentConstructor}; `ERR_SOCKSTATE_PEER_UNSUPPORTED`
   *   on undici 6, which has no RoundRobinPool.
   */
  new (origin: string | URL, options?: RoundRobinPoolOptions): RoundRobinPool;
  readonly prototype: RoundRobinPool;
}
/** The constructor of {@link ProxyAgent}. */
export interface ProxyAgentConstructor {
  /**
   * @param options - The proxy URL, or `undici.ProxyAgent` options plus
   *   {@link GuardOptions}.
   * @throws As {@link AgentConstructor}.
   */
  new (options: string | URL | ProxyAgentOptions): ProxyAgent;
  readonly prototype: ProxyAgent;
}
/** The constructor of {@link EnvHttpProxyAgent}. */
export interface EnvHttpProxyAgentConstructor {
  /**
   * @param options - `undici.EnvHttpProxyAgent` options plus {@link GuardOptions}.
   * @throws As {@link AgentConstructor}.
   */
  new (options?: EnvHttpProxyAgentOptions): EnvHttpProxyAgent;
  readonly prototype: EnvHttpProxyAgent;
}

let loaded: GuardedUndici | null = null;
let loadedVersion = '';

// Each public class, by name, for wiring once undici is loaded.
const lazies = new Map<keyof GuardedUndici, new (...args: unknown[]) => object>();

/**
 * Loads undici and builds the guarded classes, then puts each public
 * class's prototype over its guarded one, all at once: the Clients and
 * Pools a guarded Agent or Pool creates are then instances of the public
 * classes too, whichever one the user constructed first.
 */
function guarded(): GuardedUndici {
  if (loaded !== null) return loaded;
  const module = loadUndici();
  const classes = guardUndici(module);
  for (const [name, Lazy] of lazies) {
    const Real = classes[name];
    if (Real === undefined || Object.getPrototypeOf(Lazy.prototype) === Real.prototype) continue;
    Object.setPrototypeOf(Lazy.prototype, Real.prototype);
    Object.setPrototypeOf(Lazy, Real);
  }
  bindPublic(module, { Client: lazies.get('Client'), Pool: lazies.get('Pool'), Agent: lazies.get('Agent'), ProxyAgent: lazies.get('ProxyAgent') });
  loaded = classes;
  return classes;
}

// Where undici keeps the global dispatcher (undici 6 reads the first, 7
// and 8 both, Node's bundled fetch the same).
const GLOBAL_DISPATCHERS = [Symbol.for('undici.globalDispatcher.1'), Symbol.for('undici.globalDispatcher.2')];

/**
 * `require('undici')`, refused with `ERR_SOCKSTATE_PEER_UNSUPPORTED` when
 * the installed undici cannot run on this Node (undici 8 needs Node
 * 22.19: on Node 20 loading it throws inside undici) or is outside
 * `>=6 <9`. Loading undici installs its own Agent as the global dispatcher
 * when none is set, which Node's built-in fetch then follows; the global
 * dispatcher is left as the user had it.
 */
function loadUndici(): UndiciModule {
  let manifest: { version?: unknown; engines?: { node?: unknown } } | undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    manifest = require('undici/package.json') as typeof manifest;
  } catch {
    // Not installed: requirePeer() below says so with its own code.
  }
  if (manifest !== undefined) checkUndici(manifest);
  loadedVersion = typeof manifest?.version === 'string' ? manifest.version : '';
  const before = GLOBAL_DISPATCHERS.map((key) => (globalThis as Record<symbol, unknown>)[key]);
  const module = requirePeer<UndiciModule>('undici', 'sockstate/undici');
  GLOBAL_DISPATCHERS.forEach((key, i) => {
    // undici defines these non-configurable but writable: the value goes
    // back, and a later load of any undici (Node's own included) sees none.
    if ((globalThis as Record<symbol, unknown>)[key] !== before[i]) (globalThis as Record<symbol, unknown>)[key] = before[i];
  });
  return module;
}

function versionParts(version: string): number[] {
  return version.split('.').map((part) => Number.parseInt(part, 10));
}

// a >= b for dotted versions.
function atLeast(a: number[], b: number[]): boolean {
  for (let i = 0; i < 3; i += 1) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

function checkUndici(manifest: { version?: unknown; engines?: { node?: unknown } }): void {
  const version = typeof manifest.version === 'string' ? manifest.version : '';
  const major = versionParts(version)[0] ?? Number.NaN;
  if (!(major >= 6 && major < 9)) {
    throw codedError('ERR_SOCKSTATE_PEER_UNSUPPORTED', `sockstate/undici supports undici >=6 <9; the installed undici is ${version || 'of unknown version'}`);
  }
  const range = typeof manifest.engines?.node === 'string' ? /^>=\s*v?(\d+(?:\.\d+){0,2})$/.exec(manifest.engines.node.trim()) : null;
  if (range !== null && !atLeast(versionParts(process.versions.node), versionParts(range[1]!))) {
    throw codedError(
      'ERR_SOCKSTATE_PEER_UNSUPPORTED',
      `the installed undici ${version} needs Node ${manifest.engines!.node as string} and cannot load on Node ${process.versions.node}: install undici 7 (npm install undici@7) or upgrade Node`,
    );
  }
}

// A class that exists before undici is loaded: its first construction
// loads undici, builds the guarded classes and puts each public one over
// its guarded one, so `instanceof`, subclassing and undici's own methods
// work.
function lazyClass(name: keyof GuardedUndici): new (...args: unknown[]) => object {
  const Lazy = function (this: unknown, ...args: unknown[]): object {
    if (new.target === undefined) throw new TypeError(`Class constructor ${name} cannot be invoked without 'new'`);
    const Real = guarded()[name];
    if (Real === undefined) {
      throw codedError('ERR_SOCKSTATE_PEER_UNSUPPORTED', `sockstate/undici: the installed undici ${loadedVersion || '(of unknown version)'} has no ${name}`);
    }
    return Reflect.construct(Real, args, new.target) as object;
  };
  Object.defineProperty(Lazy, 'name', { value: name });
  const Public = Lazy as unknown as new (...args: unknown[]) => object;
  lazies.set(name, Public);
  return Public;
}

/**
 * A drop-in `undici.Agent` (a `Dispatcher`): same constructor options,
 * plus `reuse` and `replay`. Right before a request is written on a reused HTTP/1.1
 * keep-alive connection it checks that socket with the kernel
 * (`isReusable`); a stale socket is destroyed without an error, so undici
 * sends the request, which it has not written yet, on a fresh connection,
 * and is counted in {@link Guarded.staleSocketsDestroyed}.
 *
 * Use it per request, `fetch(url, { dispatcher: agent })`, or for every
 * request with undici's `setGlobalDispatcher(new Agent())` (which Node's
 * built-in `fetch()` follows too). HTTP/2 connections are not checked.
 *
 * A connection holding bytes nobody asked for is evicted as well
 * (`dataPending`), even one that has carried no request yet: an HTTP/1.1
 * server sends nothing unasked but a goodbye (a `408` before it closes an
 * idle connection), and a request written after it would take it for its
 * response.
 *
 * A FIN still in flight when the request leaves cannot be seen by any
 * check. When the request then fails before any of a response arrived and
 * the kernel proves the server never received it (its FIN arrived and
 * acknowledged none of the request), the request is sent again, once, on
 * a new connection, whatever its method, and counted in
 * {@link Guarded.replayedRequests}; see {@link GuardOptions.replay}.
 * Not to be confused with the `Agent` of `sockstate` itself, a node:http
 * agent for `http.request()`: `fetch()` takes this one.
 */
export const Agent: AgentConstructor = lazyClass('Agent') as unknown as AgentConstructor;

/** A drop-in `undici.Pool` with the same guard as {@link Agent}. */
export const Pool: PoolConstructor = lazyClass('Pool') as unknown as PoolConstructor;

/**
 * A drop-in `undici.Client` (one connection) with the same guard as
 * {@link Agent}. The check runs when the Client has nothing queued or in
 * flight, i.e. when the request goes out at once on the idle connection.
 */
export const Client: ClientConstructor = lazyClass('Client') as unknown as ClientConstructor;

/**
 * A drop-in `undici.BalancedPool` with the same guard as {@link Agent} on
 * the connections of each upstream's Pool.
 */
export const BalancedPool: BalancedPoolConstructor = lazyClass('BalancedPool') as unknown as BalancedPoolConstructor;

/**
 * A drop-in `undici.RoundRobinPool` with the same guard as {@link Agent}.
 * undici 7 and later: on undici 6, which has none, constructing one throws
 * `ERR_SOCKSTATE_PEER_UNSUPPORTED`.
 */
export const RoundRobinPool: RoundRobinPoolConstructor = lazyClass('RoundRobinPool') as unknown as RoundRobinPoolConstructor;

/**
 * A drop-in `undici.ProxyAgent` with the same guard as {@link Agent}.
 * Behind a proxy the kept-alive connection is the one to the proxy (an
 * HTTPS origin's TLS runs over it, through a CONNECT tunnel): that is the
 * socket checked. A request sent again goes out on the same Client, never
 * back through the agent.
 */
export const ProxyAgent: ProxyAgentConstructor = lazyClass('ProxyAgent') as unknown as ProxyAgentConstructor;

/**
 * A drop-in `undici.EnvHttpProxyAgent` (the proxy from `HTTP_PROXY`,
 * `HTTPS_PROXY` and `NO_PROXY`, as Node's `fetch()` uses it under
 * `NODE_USE_ENV_PROXY`) with the same guard as {@link ProxyAgent} on
 * proxied connections and as {@link Agent} on direct ones.
 */
export const EnvHttpProxyAgent: EnvHttpProxyAgentConstructor = lazyClass('EnvHttpProxyAgent') as unknown as EnvHttpProxyAgentConstructor;
