/**
 * HTTP(S) agents that never hand a request a keep-alive socket the kernel
 * already knows is dead.
 *
 * @packageDocumentation
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { isReusable } from './reuse';

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

  /** @param options - `http.Agent` options; `keepAlive` defaults to true. */
  constructor(options?: http.AgentOptions) {
    super(withKeepAlive(options));
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

  /** @param options - `https.Agent` options; `keepAlive` defaults to true. */
  constructor(options?: https.AgentOptions) {
    super(withKeepAlive(options));
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
