/**
 * HTTP(S) agents that never hand a request a keep-alive socket the kernel
 * already knows is dead.
 *
 * @packageDocumentation
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type * as stream from 'node:stream';
import { native, unsupported } from './native';
import { isReusable } from './reuse';
import { checkUserTimeout, type KeepAliveOptions, parseKeepAlive, setKeepAlive, setUserTimeout } from './sockopt';

type AddRequest = (req: http.ClientRequest, options: unknown, port?: unknown, localAddress?: unknown) => void;

// The parts of Node's Agent the guard reads; stable since Node 14.
interface AgentInternals {
  readonly options: Record<string, unknown>;
  readonly scheduling: 'fifo' | 'lifo';
  readonly freeSockets: Record<string, net.Socket[] | undefined>;
  getName(options: Record<string, unknown>): string;
}

const httpAddRequest = (http.Agent.prototype as unknown as { addRequest: AddRequest }).addRequest;
const httpsAddRequest = (https.Agent.prototype as unknown as { addRequest: AddRequest }).addRequest;

const SKIP = Symbol('skip');

// Node's calculateServerName (lib/_http_agent.js): the TLS name is part of
// the pool key. SKIP where Node itself throws (a non-string Host header),
// so that the guard steps aside and Node reports the error.
function serverName(options: Record<string, unknown>, req: http.ClientRequest): unknown {
  let name = options.host;
  const hostHeader = req.getHeader('host');
  if (hostHeader) {
    if (typeof hostHeader !== 'string') return SKIP;
    if (hostHeader.startsWith('[')) {
      const end = hostHeader.indexOf(']');
      name = end === -1 ? hostHeader : hostHeader.substring(1, end);
    } else {
      name = hostHeader.split(':', 1)[0];
    }
  }
  // Node does not set an IP address as the TLS server name.
  return typeof name === 'string' && net.isIP(name) !== 0 ? '' : name;
}

// The key addRequest() will use for this request: the same merge and
// normalisation Node applies before calling getName().
function poolName(
  agent: AgentInternals,
  req: http.ClientRequest,
  options: unknown,
  port: unknown,
  localAddress: unknown,
): string | null {
  const given = typeof options === 'string' ? { host: options, port, localAddress } : options;
  const merged = Object.assign(Object.create(null) as Record<string, unknown>, given, agent.options);
  if (merged.socketPath) merged.path = merged.socketPath;
  if (!merged.servername && merged.servername !== '') {
    const name = serverName(merged, req);
    if (name === SKIP) return null;
    merged.servername = name;
  }
  return agent.getName(merged);
}

/**
 * Checks the free sockets of the request's pool in the order addRequest()
 * will take them (`fifo`: oldest first, `lifo`: newest first) and removes
 * each one that is not reusable, until one is or none is left; addRequest()
 * then takes the survivor, or connects anew. Returns how many live sockets
 * it destroyed.
 *
 * Removal is Node's own for a free socket that fails (its
 * freeSocketErrorListener): destroy, then 'agentRemove', whose listener
 * takes the socket out of freeSockets and totalSocketCount synchronously.
 */
function evictStale(
  agent: AgentInternals,
  req: http.ClientRequest,
  options: unknown,
  port: unknown,
  localAddress: unknown,
): number {
  const name = poolName(agent, req, options, port, localAddress);
  if (name === null) return 0;
  const free = agent.freeSockets[name];
  if (free === undefined) return 0;
  let destroyed = 0;
  while (free.length > 0) {
    const index = agent.scheduling === 'fifo' ? 0 : free.length - 1;
    const socket = free[index]!;
    // A custom createConnection() may pool other duplex streams: those are
    // Node's to judge.
    if (!(socket instanceof net.Socket)) break;
    let failure: Error | undefined;
    let reusable: boolean;
    try {
      reusable = isReusable(socket);
    } catch (err) {
      // The check itself failed (the fd is gone): the socket is unusable,
      // and the error goes to it, where Node's free-socket error listener
      // handles it.
      failure = err as Error;
      reusable = false;
    }
    if (reusable) break;
    if (!socket.destroyed) destroyed += 1;
    socket.destroy(failure);
    socket.emit('agentRemove');
    // A socket without the agent's listeners must not stall the loop.
    if (free[index] === socket) {
      free.splice(index, 1);
      if (free.length === 0 && agent.freeSockets[name] === free) delete agent.freeSockets[name];
    }
  }
  return destroyed;
}

function withKeepAlive<T extends http.AgentOptions>(options: T | undefined): T {
  return { ...options, keepAlive: options?.keepAlive ?? true } as T;
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

/** {@link Agent} options: `http.AgentOptions` plus {@link AgentTcpOptions}. */
export type AgentOptions = http.AgentOptions & AgentTcpOptions;
/** {@link HttpsAgent} options: `https.AgentOptions` plus {@link AgentTcpOptions}. */
export type HttpsAgentOptions = https.AgentOptions & AgentTcpOptions;

// Validated TCP tuning, or null when the options ask for none.
interface Tuning {
  readonly keepAlive: KeepAliveOptions | undefined;
  readonly userTimeoutMs: number | undefined;
}

function parseTuning(options: AgentTcpOptions | undefined): Tuning | null {
  const keepAlive = options?.tcpKeepAlive;
  const userTimeoutMs = options?.userTimeoutMs;
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
type OnCreate = (err: Error | null, stream: stream.Duplex) => void;

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

/**
 * A drop-in `http.Agent` that checks every free keep-alive socket with
 * {@link isReusable} before handing it to a request. A socket the kernel
 * already knows is closed, reset, or holding unread bytes is destroyed,
 * removed from the pool and counted in {@link Agent.staleSocketsDestroyed};
 * the request gets the next free socket or a new connection.
 *
 * Same options as `http.Agent`, except that `keepAlive` defaults to true.
 * Scheduling (`lifo`/`fifo`), `maxSockets`, `maxFreeSockets`,
 * `maxTotalSockets` and `timeout` behave as in Node.
 *
 * A FIN or RST still in flight is invisible to any local check: retry
 * idempotent requests that fail on a socket with `req.reusedSocket`.
 */
export class Agent extends http.Agent {
  #staleSocketsDestroyed = 0;
  readonly #tuning: Tuning | null;

  /**
   * @param options - `http.Agent` options (`keepAlive` defaults to true),
   *   plus {@link AgentTcpOptions}.
   * @throws TypeError / RangeError for bad `tcpKeepAlive` or
   *   `userTimeoutMs` (as `setKeepAlive` / `setUserTimeout`);
   *   `ERR_SOCKSTATE_UNSUPPORTED` for either without the addon.
   */
  constructor(options?: AgentOptions) {
    const tuning = parseTuning(options);
    super(withKeepAlive(options));
    this.#tuning = tuning;
  }

  /** Node's hook, plus the TCP tuning as the socket connects. @internal */
  override createConnection(options: http.ClientRequestArgs, callback?: OnCreate): Created {
    return tuneOnConnect(super.createConnection(options, callback), this.#tuning);
  }

  /** Node's hook, plus the TCP tuning again after Node's own keepalive. @internal */
  override keepSocketAlive(socket: stream.Duplex): void {
    return retune(super.keepSocketAlive(socket), socket, this.#tuning) as unknown as void;
  }

  /**
   * Free sockets this agent found not reusable and destroyed instead of
   * handing them to a request, since it was created.
   */
  get staleSocketsDestroyed(): number {
    return this.#staleSocketsDestroyed;
  }

  /**
   * Node's hook for every request: evicts stale free sockets of the
   * request's pool, then assigns a socket as `http.Agent` does.
   *
   * @internal
   */
  addRequest(req: http.ClientRequest, options: unknown, port?: unknown, localAddress?: unknown): void {
    this.#staleSocketsDestroyed += evictStale(this as unknown as AgentInternals, req, options, port, localAddress);
    httpAddRequest.call(this, req, options, port, localAddress);
  }
}

/**
 * The HTTPS counterpart of {@link Agent}: a drop-in `https.Agent` (TLS
 * session reuse included) that destroys stale free sockets instead of
 * handing them out, counted in {@link HttpsAgent.staleSocketsDestroyed}.
 * `keepAlive` defaults to true.
 *
 * Encrypted records waiting in the kernel on a free socket (data, a
 * close_notify, a late session ticket) make it not reusable; see
 * `checkReusable()` for TLS.
 */
export class HttpsAgent extends https.Agent {
  #staleSocketsDestroyed = 0;
  readonly #tuning: Tuning | null;

  /**
   * @param options - `https.Agent` options (`keepAlive` defaults to true),
   *   plus {@link AgentTcpOptions}.
   * @throws TypeError / RangeError for bad `tcpKeepAlive` or
   *   `userTimeoutMs`; `ERR_SOCKSTATE_UNSUPPORTED` for either without the
   *   addon.
   */
  constructor(options?: HttpsAgentOptions) {
    const tuning = parseTuning(options);
    super(withKeepAlive(options));
    this.#tuning = tuning;
  }

  /** Node's hook, plus the TCP tuning as the socket connects. @internal */
  override createConnection(options: http.ClientRequestArgs, callback?: OnCreate): Created {
    return tuneOnConnect(super.createConnection(options, callback), this.#tuning);
  }

  /** Node's hook, plus the TCP tuning again after Node's own keepalive. @internal */
  override keepSocketAlive(socket: stream.Duplex): void {
    return retune(super.keepSocketAlive(socket), socket, this.#tuning) as unknown as void;
  }

  /**
   * Free sockets this agent found not reusable and destroyed instead of
   * handing them to a request, since it was created.
   */
  get staleSocketsDestroyed(): number {
    return this.#staleSocketsDestroyed;
  }

  /**
   * Node's hook for every request: evicts stale free sockets of the
   * request's pool, then assigns a socket as `https.Agent` does.
   *
   * @internal
   */
  addRequest(req: http.ClientRequest, options: unknown, port?: unknown, localAddress?: unknown): void {
    this.#staleSocketsDestroyed += evictStale(this as unknown as AgentInternals, req, options, port, localAddress);
    httpsAddRequest.call(this, req, options, port, localAddress);
  }
}
