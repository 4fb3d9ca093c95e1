/**
 * HTTP(S) agents that never hand a request a keep-alive socket the kernel
 * already knows is dead.
 *
 * @packageDocumentation
 */
import * as diagnostics from 'node:diagnostics_channel';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type * as stream from 'node:stream';
import { publishConnection, publishReuseCheck } from '../policy/channel';
import { codedError, invalidArgType, type SockstateError } from '../errors';
import { native, unsupported } from '../probe/native';
import { markReplaySafe, provenUndelivered, type RequestWatch, releaseWatch, watchRequest } from '../policy/replay';
import { type ReuseOptions, type ReusePolicy, type ReuseReason, reusePolicy, reuseReasonWith } from '../policy/reuse';
import { checkUserTimeout, type KeepAliveOptions, ownOption, parseKeepAlive, setKeepAlive, setUserTimeout } from '../probe/sockopt';
import { NO_HANDLE, targetFd } from '../probe/target';

type AddRequest = (req: http.ClientRequest, options: unknown, port?: unknown, localAddress?: unknown) => void;

// The parts of Node's Agent the guard reads; stable since Node 14.
interface AgentInternals {
  readonly options: Record<string, unknown>;
  readonly scheduling: 'fifo' | 'lifo';
  readonly freeSockets: Record<string, net.Socket[] | undefined>;
  readonly requests: Record<string, unknown[] | undefined>;
  getName(options: unknown): string;
}

// What each guarded agent keeps, out of the instance so that the emitted
// .d.ts declares no private fields (which older TypeScript targets reject).
interface Guard {
  staleSocketsDestroyed: number;
  // Set while Node's addRequest() runs: its first getName() call names the
  // pool it is about to take a free socket from.
  addingRequest: boolean;
  readonly tuning: Tuning | null;
  readonly policy: ReusePolicy | null;
  // keepAlive is on because the options did not name it (our default, not
  // the caller's choice).
  defaultKeepAlive: boolean;
}
const guards = new WeakMap<http.Agent, Guard>();

function guardOf(agent: http.Agent): Guard {
  const guard = guards.get(agent);
  // Only reachable by calling a method with a `this` that is no sockstate
  // agent (Agent.prototype.addRequest.call(other, ...)).
  if (guard === undefined) throw invalidArgType('this', 'an instance of Agent or HttpsAgent', agent);
  return guard;
}

/**
 * The one reuse check both agents make, on both paths (a socket taken from
 * the free pool, a socket handed to a queued request): reported on the
 * reuse-check channel. Without options a reusable socket costs one
 * poll(2); only an eviction pays for the probe that names its reason.
 * Throws when the check itself fails (the fd is gone).
 */
function reusable(agent: object, socket: net.Socket, policy: ReusePolicy | null): boolean {
  let reason: ReuseReason;
  try {
    reason = reuseReasonWith(socket, policy);
  } catch (err) {
    publishReuseCheck(agent, false, 'error');
    throw err;
  }
  publishReuseCheck(agent, reason === 'idle', reason);
  return reason === 'idle';
}

/**
 * Both paths' verdict on a socket about to be handed out: true when it is
 * reusable; otherwise it is destroyed. A check that itself failed (the fd
 * is gone) leaves the socket unusable, and its error goes out as a process
 * warning: no request owns the socket, and Node's listener on a free
 * socket drops errors.
 */
function keepOrDestroy(agent: object, socket: net.Socket, policy: ReusePolicy | null): boolean {
  let failure: Error | undefined;
  try {
    if (reusable(agent, socket, policy)) return true;
  } catch (err) {
    failure = err as Error;
  }
  socket.destroy();
  if (failure !== undefined) process.emitWarning(failure);
  return false;
}

const httpAddRequest = (http.Agent.prototype as unknown as { addRequest: AddRequest }).addRequest;
const httpsAddRequest = (https.Agent.prototype as unknown as { addRequest: AddRequest }).addRequest;

// A socket with no handle that is not destroyed never had a connection
// (one put in the pool by hand): there is nothing for the kernel to judge,
// so it is Node's, as any other stream a custom createConnection() pools.
function neverConnected(socket: net.Socket): boolean {
  return !socket.destroyed && !socket.connecting && targetFd(socket, 'socket') === NO_HANDLE;
}

/**
 * Checks the free sockets of pool `name` in the order addRequest() will
 * take them (`fifo`: oldest first, `lifo`: newest first) and removes each
 * one that is not reusable, until one is or none is left; addRequest()
 * then takes the survivor, or connects anew. Returns how many live sockets
 * it destroyed.
 *
 * Removal is Node's own for a free socket that fails (its
 * freeSocketErrorListener): destroy, then 'agentRemove', whose listener
 * takes the socket out of freeSockets and totalSocketCount synchronously.
 */
function evictStale(agent: AgentInternals, policy: ReusePolicy | null, name: string): number {
  const free = agent.freeSockets[name];
  if (free === undefined) return 0;
  let destroyed = 0;
  while (free.length > 0) {
    const index = agent.scheduling === 'fifo' ? 0 : free.length - 1;
    const socket = free[index]!;
    // A custom createConnection() may pool other duplex streams: those are
    // Node's to judge.
    if (!(socket instanceof net.Socket) || neverConnected(socket)) break;
    const live = !socket.destroyed;
    if (keepOrDestroy(agent, socket, policy)) break;
    if (live) destroyed += 1;
    socket.emit('agentRemove');
    // A socket without the agent's listeners must not stall the loop.
    if (free[index] === socket) {
      free.splice(index, 1);
      if (free.length === 0 && agent.freeSockets[name] === free) delete agent.freeSockets[name];
    }
  }
  return destroyed;
}

/**
 * Node's 'free' handler (lib/_http_agent.js) gives a socket returning from
 * a request straight to the next queued request of its pool, without
 * addRequest(). This listener runs first and checks that socket exactly
 * like a free one. A stale socket is destroyed: Node's handler then finds
 * it unwritable and leaves it, and its 'close' runs Node's removeSocket(),
 * which takes it out of the agent's counts and opens a connection for the
 * queued request. That is the path Node 22.2x+ takes itself when its own
 * hasPendingRead() check fails at the hand-off.
 *
 * Skipped: a socket that is not returning from a request (removeSocket()
 * emits 'free' on a connection it has only just started, and a custom
 * createConnection() may deliver one mid-handshake), one still connecting,
 * one Node will drop anyway (unwritable), and one going to the free pool
 * rather than to a queued request (checked when it is taken).
 */
function guardHandOff(agent: AgentInternals, guard: Guard, socket: unknown, options: unknown): void {
  if (!(socket instanceof net.Socket) || socket.connecting || !socket.writable) return;
  if ((socket as unknown as { _httpMessage?: unknown })._httpMessage == null) return;
  const queued = agent.requests[agent.getName(options)];
  if (queued === undefined || queued.length === 0) return;
  // Writable, so live until now.
  if (!keepOrDestroy(agent, socket, guard.policy)) guard.staleSocketsDestroyed += 1;
  // Node's handler gives the socket to this request without reuseSocket().
  else watchReused(socket, queued[0] as http.ClientRequest);
}

// The two packages each export an Agent; this one is node:http's kind.
function notADispatcher(): SockstateError {
  return codedError(
    'ERR_SOCKSTATE_NOT_A_DISPATCHER',
    "sockstate's Agent and HttpsAgent are node:http agents (for http.request() and http.globalAgent); fetch() and undici take the Agent of 'sockstate/undici'",
  );
}

// The requests given a reused socket, each with its connection's byte
// counts; weak, and kept off the request object, whose shape stays Node's.
const watched = new WeakMap<http.ClientRequest, RequestWatch>();
let subscribed = false;

// Node publishes each request's 'error' on this channel right before it
// emits it (every line from 20 on), 'socket hang up' included, which
// ClientRequest creates itself: the error is marked there.
function onRequestError(message: unknown): void {
  const { request, error } = message as { request: http.ClientRequest; error: unknown };
  const watch = watched.get(request);
  if (watch === undefined) return;
  watched.delete(request);
  // A response began: whatever failed after it is no undelivered request.
  if ((request as { res?: unknown }).res != null) releaseWatch(watch);
  else if (provenUndelivered(watch)) markReplaySafe(error);
}

// A response began: the watch is let go now, so that the socket's later
// close takes no figures for a request that was answered.
function onResponse(message: unknown): void {
  const { request } = message as { request: http.ClientRequest };
  const watch = watched.get(request);
  if (watch === undefined) return;
  watched.delete(request);
  releaseWatch(watch);
}

/**
 * A reused socket is given to a request right after the guard's check and
 * before the request is written: through Node's reuseSocket(socket, req)
 * from addRequest(), and at the queued hand-off straight from Node's
 * 'free' handler. The connection's byte counts are taken there; if the
 * request then fails before any of a response arrived and the kernel
 * proves the server never received it, its error is marked for
 * isReplaySafe().
 */
function watchReused(socket: unknown, req: http.ClientRequest): void {
  if (!(socket instanceof net.Socket) || watched.has(req)) return;
  let watch: RequestWatch | null;
  try {
    watch = watchRequest(socket);
  } catch {
    return;
  }
  if (watch === null) return;
  watched.set(req, watch);
  if (!subscribed) {
    subscribed = true;
    diagnostics.subscribe('http.client.request.error', onRequestError);
    diagnostics.subscribe('http.client.response.finish', onResponse);
  }
}

// Our one departure from Node's options: `keepAlive` is on unless the
// options name it. Named, even as undefined, it means what it means to
// Node (`options.keepAlive || false`). Node's constructor is given the
// default as if the caller had named it; `agent.options` then keeps only
// what the caller gave (see restoreOptions()).
function defaultsKeepAlive(options: http.AgentOptions | undefined): boolean {
  return options === undefined || options === null || !Object.prototype.hasOwnProperty.call(options, 'keepAlive');
}

function nodeOptions<T extends http.AgentOptions>(options: T | undefined, defaultKeepAlive: boolean): T | undefined {
  return defaultKeepAlive ? ({ ...options, keepAlive: true } as T) : options;
}

interface AgentFields {
  options: Record<string, unknown>;
  maxSockets: number;
  keepAlive: boolean;
}

// After Node's constructor: `agent.options` without the keepAlive Node was
// handed for our default, and `maxSockets` from Agent.defaultMaxSockets
// when the options give none (Node's constructor reads its own class's
// static, which assignments to ours would never reach).
function restoreOptions(agent: http.Agent, defaultKeepAlive: boolean): void {
  const fields = agent as unknown as AgentFields;
  if (defaultKeepAlive) delete fields.options.keepAlive;
  if (!fields.options.maxSockets) fields.maxSockets = CallableAgent.defaultMaxSockets;
}

/** TCP tuning an {@link Agent} or {@link HttpsAgent} applies to its sockets. */
export interface AgentTcpOptions {
  /**
   * Keepalive tuning for every TCP socket, applied as it connects and each
   * time it returns to the pool, after Node's agent has set its own
   * (`keepAliveMsecs` idle, libuv's 1 s interval and count of 10; the
   * HTTPS agent does that on the first return). Sockets over `socketPath`
   * are left alone. Needs the native addon.
   */
  readonly tcpKeepAlive?: KeepAliveOptions;
  /** TCP_USER_TIMEOUT in ms for every TCP socket, applied when it connects. Needs the native addon. */
  readonly userTimeoutMs?: number;
}

/** What counts as reusable for an {@link Agent} or {@link HttpsAgent}. */
export interface AgentReuseOptions {
  /**
   * Stricter reuse rules, passed to `checkReusable()` for every socket the
   * agent is about to hand out: `maxSilentMs` evicts a connection whose
   * peer has sent nothing (keepalive ACKs included) for longer, which
   * catches one a NAT or firewall dropped silently; any options object
   * also rules out `stalled` connections unless `allowStalled`. Each check
   * then reads `TCP_INFO`; without `reuse` it is one `poll(2)`.
   */
  readonly reuse?: ReuseOptions;
}

/** {@link Agent} options: `http.AgentOptions` plus {@link AgentTcpOptions} and {@link AgentReuseOptions}. */
export type AgentOptions = http.AgentOptions & AgentTcpOptions & AgentReuseOptions;
/** {@link HttpsAgent} options: `https.AgentOptions` plus {@link AgentTcpOptions} and {@link AgentReuseOptions}. */
export type HttpsAgentOptions = https.AgentOptions & AgentTcpOptions & AgentReuseOptions;

function parseReuse(options: AgentReuseOptions | undefined): ReusePolicy | null {
  if (options === undefined || options === null) return null;
  return reusePolicy(ownOption(options, 'reuse'), 'options.reuse');
}

// Validated TCP tuning, or null when the options ask for none.
interface Tuning {
  readonly keepAlive: KeepAliveOptions | undefined;
  readonly userTimeoutMs: number | undefined;
}

function parseTuning(options: AgentTcpOptions | undefined): Tuning | null {
  if (options === undefined || options === null) return null;
  const keepAlive = ownOption(options, 'tcpKeepAlive') as KeepAliveOptions | undefined;
  const userTimeoutMs = ownOption(options, 'userTimeoutMs') as number | undefined;
  if (keepAlive === undefined && userTimeoutMs === undefined) return null;
  if (keepAlive !== undefined) parseKeepAlive(keepAlive, 'options.tcpKeepAlive');
  if (userTimeoutMs !== undefined) checkUserTimeout(userTimeoutMs, 'options.userTimeoutMs');
  if (native === null) throw unsupported('Agent options tcpKeepAlive and userTimeoutMs');
  return { keepAlive, userTimeoutMs };
}

// TCP options mean nothing to a socket over `socketPath` (AF_UNIX), which
// Node's own setKeepAlive() leaves alone too.
function isTcp(socket: net.Socket): boolean {
  return socket.remoteFamily === 'IPv4' || socket.remoteFamily === 'IPv6';
}

// Applies the keepalive tuning, and the user timeout when asked (nothing
// resets that one after connect); throws the SockstateError of a socket
// that cannot take it.
function applyTuning(socket: net.Socket, tuning: Tuning, withUserTimeout: boolean): void {
  if (!isTcp(socket)) return;
  if (tuning.keepAlive !== undefined) setKeepAlive(socket, tuning.keepAlive);
  if (withUserTimeout && tuning.userTimeoutMs !== undefined) setUserTimeout(socket, tuning.userTimeoutMs);
}

type Created = stream.Duplex | null | undefined;

// Node's agents set their own keepalive (keepAliveMsecs idle, libuv's 1 s
// interval and count of 10): http.Agent just before 'connect' is emitted,
// https.Agent the first time the socket returns to the pool. The tuning is
// applied after both.

// After Node's createConnection(): the tuning, once the socket connects. A
// socket that cannot take it is destroyed with the error, which its
// request receives.
function tuneOnConnect(socket: Created, tuning: Tuning | null): Created {
  if (tuning !== null && socket instanceof net.Socket) {
    socket.once('connect', () => {
      try {
        applyTuning(socket, tuning, true);
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
  }
  return socket;
}

// After Node's keepSocketAlive(): the keepalive tuning again. A socket
// that cannot take it is not pooled (Node then destroys it); it has no
// 'error' listener at this point, so the error goes out as a process
// warning instead of an uncaught exception. (Node's hook returns whether
// to keep the socket; @types/node says void.)
function retune(keep: unknown, socket: stream.Duplex, tuning: Tuning | null): boolean {
  if (!keep || tuning === null || !(socket instanceof net.Socket)) return Boolean(keep);
  try {
    applyTuning(socket, tuning, false);
    return true;
  } catch (err) {
    process.emitWarning(err as Error);
    return false;
  }
}

// What both agents' constructors do after Node's: keep the guard's state
// and put the hand-off check in front of Node's 'free' handler.
function install(agent: http.Agent, tuning: Tuning | null, policy: ReusePolicy | null, defaultKeepAlive: boolean): void {
  restoreOptions(agent, defaultKeepAlive);
  const guard: Guard = { staleSocketsDestroyed: 0, addingRequest: false, tuning, policy, defaultKeepAlive };
  guards.set(agent, guard);
  agent.prependListener('free', (socket: unknown, options: unknown) => {
    guardHandOff(agent as unknown as AgentInternals, guard, socket, options);
  });
}

// Through a proxy (`proxyEnv`, Node 22.21+ and 24.5+), https.Agent's
// createConnection() returns the socket to the proxy marked as waiting for
// the CONNECT tunnel, and delivers the TLS socket of the tunnel through the
// callback; Node's createSocket() pools only that one, and so it alone is
// the agent's connection.
function waitsForTunnel(socket: object): boolean {
  return Object.getOwnPropertySymbols(socket).some(
    (key) => key.description === 'kWaitForProxyTunnel' && (socket as Record<symbol, unknown>)[key] === true,
  );
}

// Node's createConnection() with the tuning and the announcement of each
// connection. Every argument goes through as given: http.Agent's is
// net.createConnection() (`(options[, cb])`, `(port[, host][, cb])`,
// `(path[, cb])`), https.Agent's takes `(port, host, options)` and
// `(port, options)` as well, and both take a trailing function as the
// callback. Node's own createConnection() returns the socket; a custom one
// may deliver it through the callback instead (or as well). The tuning
// goes to the returned socket: through a proxy tunnel, its TCP connection
// is the one the tunnel's TLS socket runs over.
function openConnection(agent: http.Agent, create: (...args: unknown[]) => Created, args: unknown[]): Created {
  let announced: stream.Duplex | undefined;
  const announce = (socket: unknown): void => {
    if (socket !== announced && typeof socket === 'object' && socket !== null) {
      announced = socket as stream.Duplex;
      publishConnection(agent, socket);
    }
  };
  const last = args.length - 1;
  const callback = args[last];
  if (typeof callback === 'function') {
    // Passed through unchanged: net.createConnection() makes it a 'connect'
    // listener, called with no arguments.
    args = [...args];
    args[last] = function (this: unknown, ...results: unknown[]): unknown {
      if (results[0] == null) announce(results[1]);
      return (callback as (...a: unknown[]) => unknown).apply(this, results);
    };
  }
  const socket = create.apply(agent, args);
  if (typeof socket === 'object' && socket !== null && !waitsForTunnel(socket)) announce(socket);
  return tuneOnConnect(socket, guardOf(agent).tuning);
}

// Node's addRequest() merges and normalises the request's options (the
// TLS server name from the Host header included), then asks getName() for
// the pool's key and reads that pool's free sockets at once. The guard
// evicts stale free sockets at that first getName() call, with the very
// key Node computed, rather than repeating Node's normalisation.
function guardedAddRequest(agent: http.Agent, addRequest: AddRequest, args: Parameters<AddRequest>): void {
  const guard = guardOf(agent);
  if (guard.defaultKeepAlive && isAgentFalse(args[1])) throwAway(agent as unknown as AgentFields, args[0]);
  guard.addingRequest = true;
  try {
    addRequest.apply(agent, args);
  } finally {
    guard.addingRequest = false;
  }
}

// A request made with `agent: false`: Node gives it `new
// globalAgent.constructor()`, an agent no one else can reach, and passes
// the request's options (`agent: false` included) to its addRequest().
function isAgentFalse(options: unknown): boolean {
  return typeof options === 'object' && options !== null && (options as { agent?: unknown }).agent === false;
}

// That agent, built with no options, has our keepAlive default; with
// Node's it is not keep-alive: one connection, closed after the response.
// So it is made what Node's would be, and the request too, as Node's
// ClientRequest decides for such an agent (keep-alive only when maxSockets
// is finite). A request whose header is already rendered (headers given as
// an array, an Expect header) still says keep-alive, but its connection is
// closed all the same.
function throwAway(agent: AgentFields, req: http.ClientRequest): void {
  agent.keepAlive = false;
  if (!Number.isFinite(agent.maxSockets)) {
    const fields = req as unknown as { shouldKeepAlive: boolean; _last: boolean };
    fields.shouldKeepAlive = false;
    fields._last = true;
  }
}

function guardedName(agent: http.Agent, name: string): string {
  const guard = guardOf(agent);
  if (guard.addingRequest) {
    // Only the first call: eviction runs Node's removeSocket(), which
    // calls getName() again.
    guard.addingRequest = false;
    guard.staleSocketsDestroyed += evictStale(agent as unknown as AgentInternals, guard.policy, name);
  }
  return name;
}

// Node's agents are functions, callable without `new`
// (`http.Agent({ keepAlive: true })`); a class is not. Each class is
// exported behind a Proxy that constructs when called, and is its
// prototype's `constructor`, so that `agent.constructor === Agent` and
// `new agent.constructor()` (Node's `agent: false`) reach the same thing.
type Callable<C extends new (options?: never) => object> = C & ((...args: ConstructorParameters<C>) => InstanceType<C>);

function callable<C extends new (options?: never) => object>(cls: C): Callable<C> {
  const ctor = new Proxy(cls, {
    // A subclass compiled to ES5 calls its base with its own `this` and
    // keeps what the call returns (`_super.call(this, o) || this`): the
    // agent is then made with that subclass's prototype.
    apply: (target, thisArg: unknown, args: unknown[]) =>
      Reflect.construct(target, args, thisArg instanceof target ? (thisArg as object).constructor : target),
  });
  Object.defineProperty(cls.prototype, 'constructor', { value: ctor, writable: true, configurable: true, enumerable: false });
  return ctor as Callable<C>;
}

/**
 * The implementation of {@link Agent}; exported callable as `Agent`.
 */
class Agent extends http.Agent {
  /**
   * `maxSockets` for agents whose options give none, read as each is
   * created; until assigned, Node's `http.Agent.defaultMaxSockets`
   * (Infinity). {@link HttpsAgent} reads it too.
   */
  declare static defaultMaxSockets: number;

  /**
   * @param options - `http.Agent` options (`keepAlive` defaults to true
   *   when they do not name it), plus {@link AgentTcpOptions} and
   *   {@link AgentReuseOptions}.
   * @throws TypeError / RangeError for bad `tcpKeepAlive` or
   *   `userTimeoutMs` (as `setKeepAlive` / `setUserTimeout`) or bad
   *   `reuse` (as `checkReusable`); `ERR_SOCKSTATE_UNSUPPORTED` for
   *   tuning without the addon.
   */
  constructor(options?: AgentOptions) {
    const tuning = parseTuning(options);
    const policy = parseReuse(options);
    const defaultKeepAlive = defaultsKeepAlive(options);
    super(nodeOptions(options, defaultKeepAlive));
    install(this, tuning, policy, defaultKeepAlive);
  }

  /**
   * Node's hook, with every argument form Node's takes (`(options[, cb])`,
   * `(port[, host][, cb])`, `(path[, cb])`), plus the TCP tuning as the
   * socket connects. @internal
   */
  override createConnection(...args: unknown[]): Created {
    return openConnection(this, super.createConnection as (...a: unknown[]) => Created, args);
  }

  /** Node's hook, plus the TCP tuning again after Node's own keepalive. @internal */
  override keepSocketAlive(socket: stream.Duplex): void {
    return retune(super.keepSocketAlive(socket), socket, guardOf(this).tuning) as unknown as void;
  }

  /**
   * Sockets this agent found not reusable and destroyed instead of handing
   * them to a request (from the free pool or at the queued hand-off), since
   * it was created.
   */
  get staleSocketsDestroyed(): number {
    return guardOf(this).staleSocketsDestroyed;
  }

  /**
   * Not an undici dispatcher: `fetch()` and undici call `dispatch()`, and
   * find this instead of a missing method, which would fail with
   * `agent.dispatch is not a function`.
   *
   * @throws SockstateError `ERR_SOCKSTATE_NOT_A_DISPATCHER`, always, naming
   *   the `Agent` of `sockstate/undici` that fetch() takes.
   */
  dispatch(): never {
    throw notADispatcher();
  }

  /**
   * Node's hook for every request: evicts stale free sockets of the
   * request's pool, then assigns a socket as `http.Agent` does.
   *
   * @internal
   */
  addRequest(req: http.ClientRequest, options: unknown, port?: unknown, localAddress?: unknown): void {
    guardedAddRequest(this, httpAddRequest, [req, options, port, localAddress]);
  }

  /** Node's hook for a pool's key; where addRequest() asks, stale free sockets of that pool are evicted first. @internal */
  override getName(options?: http.ClientRequestArgs): string {
    return guardedName(this, super.getName(options));
  }

  /** Node's hook as a pooled socket is given to a request; the request is watched for a replay-safe failure. @internal */
  override reuseSocket(socket: net.Socket, request: http.ClientRequest): void {
    super.reuseSocket(socket, request);
    watchReused(socket, request);
  }
}

/**
 * A drop-in `http.Agent` that checks every keep-alive socket with
 * `isReusable()` before handing it to a request: one taken from the
 * free pool, and one handed straight from a finished request to a queued
 * one (when `maxSockets` is reached). A socket the kernel already knows is
 * closed, reset, or holding unread bytes is destroyed, removed from the
 * pool and counted in `staleSocketsDestroyed`; the request gets the next
 * free socket or a new connection.
 *
 * Same options as `http.Agent`, except that `keepAlive` defaults to true
 * when the options do not name it (named, even as `undefined`, it means
 * what it means to Node). Like `http.Agent` it can be called without
 * `new`, takes every argument form of `createConnection()`, and reads
 * `Agent.defaultMaxSockets` when the options give no `maxSockets`.
 * Scheduling (`lifo`/`fifo`), `maxSockets`, `maxFreeSockets`,
 * `maxTotalSockets` and `timeout` behave as in Node. A request made with
 * `agent: false` while this agent (or a subclass) is `http.globalAgent`
 * gets Node's throw-away agent: one connection, closed after the response.
 *
 * Every check is published on the `sockstate:reuse-check` channel (reason
 * `'error'` when the check itself failed), and every connection the agent
 * opens on `sockstate:connection`, with the agent as `owner`.
 *
 * A FIN or RST still in flight is invisible to any local check: retry
 * idempotent requests that fail on a socket with `req.reusedSocket`.
 */
const CallableAgent = callable(Agent);
type CallableAgent = Agent;
export { CallableAgent as Agent };

/**
 * The implementation of {@link HttpsAgent}; exported callable as `HttpsAgent`.
 */
class HttpsAgent extends https.Agent {
  /**
   * @param options - `https.Agent` options (`keepAlive` defaults to true
   *   when they do not name it), plus {@link AgentTcpOptions} and
   *   {@link AgentReuseOptions}.
   * @throws TypeError / RangeError for bad `tcpKeepAlive`,
   *   `userTimeoutMs` or `reuse`; `ERR_SOCKSTATE_UNSUPPORTED` for tuning
   *   without the addon.
   */
  constructor(options?: HttpsAgentOptions) {
    const tuning = parseTuning(options);
    const policy = parseReuse(options);
    const defaultKeepAlive = defaultsKeepAlive(options);
    super(nodeOptions(options, defaultKeepAlive));
    install(this, tuning, policy, defaultKeepAlive);
  }

  /**
   * Node's hook, with every argument form Node's takes (`(options[, cb])`,
   * `(port, host, options)`, `(port, options)`), plus the TCP tuning as the
   * socket connects. @internal
   */
  override createConnection(...args: unknown[]): Created {
    return openConnection(this, super.createConnection as (...a: unknown[]) => Created, args);
  }

  /** Node's hook, plus the TCP tuning again after Node's own keepalive. @internal */
  override keepSocketAlive(socket: stream.Duplex): void {
    return retune(super.keepSocketAlive(socket), socket, guardOf(this).tuning) as unknown as void;
  }

  /**
   * Sockets this agent found not reusable and destroyed instead of handing
   * them to a request (from the free pool or at the queued hand-off), since
   * it was created.
   */
  get staleSocketsDestroyed(): number {
    return guardOf(this).staleSocketsDestroyed;
  }

  /**
   * Not an undici dispatcher: `fetch()` and undici call `dispatch()`, and
   * find this instead of a missing method, which would fail with
   * `agent.dispatch is not a function`.
   *
   * @throws SockstateError `ERR_SOCKSTATE_NOT_A_DISPATCHER`, always, naming
   *   the `Agent` of `sockstate/undici` that fetch() takes.
   */
  dispatch(): never {
    throw notADispatcher();
  }

  /**
   * Node's hook for every request: evicts stale free sockets of the
   * request's pool, then assigns a socket as `https.Agent` does.
   *
   * @internal
   */
  addRequest(req: http.ClientRequest, options: unknown, port?: unknown, localAddress?: unknown): void {
    guardedAddRequest(this, httpsAddRequest, [req, options, port, localAddress]);
  }

  /** Node's hook for a pool's key; where addRequest() asks, stale free sockets of that pool are evicted first. @internal */
  override getName(options?: https.RequestOptions): string {
    return guardedName(this, super.getName(options));
  }

  /** Node's hook as a pooled socket is given to a request; the request is watched for a replay-safe failure. @internal */
  override reuseSocket(socket: net.Socket, request: http.ClientRequest): void {
    super.reuseSocket(socket, request);
    watchReused(socket, request);
  }
}

/**
 * The HTTPS counterpart of {@link Agent}: a drop-in `https.Agent` (TLS
 * session reuse included) that checks free sockets and sockets handed to
 * queued requests alike, and destroys stale ones instead of handing them
 * out, counted in `staleSocketsDestroyed`. `keepAlive` defaults to true
 * when the options do not name it; the rest is as for {@link Agent}
 * (callable without `new`, every `createConnection()` form, `agent: false`
 * with this agent as `https.globalAgent`). `maxSockets` defaults to
 * `Agent.defaultMaxSockets`, as Node's https.Agent reads
 * `http.Agent.defaultMaxSockets`.
 *
 * Encrypted records waiting in the kernel on a free socket (data, a
 * close_notify, a late session ticket) make it not reusable; see
 * `checkReusable()` for TLS.
 */
const CallableHttpsAgent = callable(HttpsAgent);
type CallableHttpsAgent = HttpsAgent;
export { CallableHttpsAgent as HttpsAgent };
