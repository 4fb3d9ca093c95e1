/**
 * `sockstate/undici`: undici dispatchers, and through them Node's built-in
 * `fetch()`, that never write a request on a keep-alive connection the
 * kernel already knows is dead.
 *
 * undici is an optional peer dependency (`>=6 <9`). Requiring this module
 * loads nothing; the first `new Agent()` (or `Pool`, `Client`) loads
 * `undici`, or throws `ERR_SOCKSTATE_PEER_MISSING` when it is not
 * installed.
 *
 * @packageDocumentation
 */
import type * as undici from 'undici';
import { requirePeer } from './peer';
import type { ReuseOptions } from './reuse';
import { type GuardedUndici, guardUndici, type UndiciModule } from './undici/guard';

export type { ReuseOptions } from './reuse';

/** What the guarded dispatchers add to undici's options. */
export interface GuardOptions {
  /**
   * Stricter reuse rules (`maxSilentMs`, `allowStalled`), as for
   * `isReusable(socket, options)`. Without them each check is one
   * `poll(2)`.
   */
  readonly reuse?: ReuseOptions;
}

/** {@link Agent} options: `undici.Agent.Options` without `factory`, plus {@link GuardOptions}. */
export type AgentOptions = Omit<undici.Agent.Options, 'factory'> & GuardOptions;
/** {@link Pool} options: `undici.Pool.Options` without `factory`, plus {@link GuardOptions}. */
export type PoolOptions = Omit<undici.Pool.Options, 'factory'> & GuardOptions;
/** {@link Client} options: `undici.Client.Options` plus {@link GuardOptions}. */
export type ClientOptions = undici.Client.Options & GuardOptions;

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
}

/** A guarded `undici.Agent`; see {@link Agent}. */
export interface Agent extends undici.Agent, Guarded {}
/** A guarded `undici.Pool`; see {@link Pool}. */
export interface Pool extends undici.Pool, Guarded {}
/** A guarded `undici.Client`; see {@link Client}. */
export interface Client extends undici.Client, Guarded {}

/** The constructor of {@link Agent}. */
export interface AgentConstructor {
  /**
   * @param options - `undici.Agent` options plus {@link GuardOptions}.
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError
   *   `ERR_OUT_OF_RANGE` for bad `options` or `options.reuse`;
   *   `ERR_INVALID_ARG_VALUE` for `options.factory`.
   * @throws SockstateError `ERR_SOCKSTATE_PEER_MISSING` when undici is not
   *   installed.
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

let loaded: GuardedUndici | null = null;

function guarded(): GuardedUndici {
  loaded ??= guardUndici(requirePeer<UndiciModule>('undici', 'sockstate/undici'));
  return loaded;
}

// A class that exists before undici is loaded: its first construction
// loads undici, builds the guarded class and puts it under this one's
// prototype, so `instanceof`, subclassing and undici's own methods work.
function lazyClass(name: keyof GuardedUndici): new (...args: unknown[]) => object {
  const Lazy = function (this: unknown, ...args: unknown[]): object {
    if (new.target === undefined) throw new TypeError(`Class constructor ${name} cannot be invoked without 'new'`);
    const Real = guarded()[name];
    if (Object.getPrototypeOf(Lazy.prototype) !== Real.prototype) {
      Object.setPrototypeOf(Lazy.prototype, Real.prototype);
      Object.setPrototypeOf(Lazy, Real);
    }
    return Reflect.construct(Real, args, new.target) as object;
  };
  Object.defineProperty(Lazy, 'name', { value: name });
  return Lazy as unknown as new (...args: unknown[]) => object;
}

/**
 * A drop-in `undici.Agent` (a `Dispatcher`): same constructor options,
 * plus `reuse`. Right before a request is written on a reused HTTP/1.1
 * keep-alive connection it checks that socket with the kernel
 * (`isReusable`); a stale socket is destroyed without an error, so undici
 * sends the request, which it has not written yet, on a fresh connection,
 * and is counted in {@link Guarded.staleSocketsDestroyed}.
 *
 * Use it per request, `fetch(url, { dispatcher: agent })`, or for every
 * request with undici's `setGlobalDispatcher(new Agent())` (which Node's
 * built-in `fetch()` follows too). HTTP/2 connections are not checked.
 * A FIN still in flight cannot be seen locally: retry idempotent requests
 * (undici's retry interceptor).
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
