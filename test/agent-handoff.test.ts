import type { ChildProcess } from 'node:child_process';
import * as diagnostics from 'node:diagnostics_channel';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent, HttpsAgent } from '../src/integrations/agent';
import { CONNECTION_CHANNEL, REUSE_CHECK_CHANNEL, type ConnectionMessage, type ReuseCheckMessage } from '../src/policy/channel';
import { connectionState } from '../src/index';
import { type Outcome, request, type Started } from './helpers/http-agent';
import { busyWait, listen, spawnFixture, waitFor } from './helpers/sockets';
import { makeCertificate } from './helpers/tls';

// The queued hand-off: with maxSockets reached, Node's 'free' handler gives
// a socket returning from a request straight to the next queued request,
// without addRequest(). Measured side by side with Node's stock agents on
// the line this runs on.
//
// Node 22.2x+ (22.23.5, 24.22.3 and 26.12.1 in CI) check
// socket._handle.hasPendingRead() on a free socket before reuse and at the
// queued hand-off, and destroy it when the kernel holds data or a FIN.
// Node 20 checks neither.
const nodeMajor = Number(process.versions.node.split('.')[0]);
const stockChecks = nodeMajor >= 22;

function start(agent: http.Agent, port: number, client: typeof http | typeof https, extra: https.RequestOptions = {}): Started {
  return request(agent, { host: '127.0.0.1', port, ...extra }, client);
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});
function track<T extends http.Agent>(agent: T): T {
  cleanups.push(() => agent.destroy());
  return agent;
}

// Agent fields Node keeps but @types/node does not declare.
interface AgentFields {
  totalSocketCount: number;
  requests: Record<string, unknown[] | undefined>;
}
const fields = (agent: http.Agent): AgentFields => agent as unknown as AgentFields;
const count = (lists: NodeJS.ReadOnlyDict<unknown[]> | Record<string, unknown[] | undefined>): number =>
  Object.values(lists).reduce((n: number, list) => n + (list?.length ?? 0), 0);

function subscribe<T>(name: string): T[] {
  const seen: T[] = [];
  const listener = (message: unknown): void => {
    seen.push(message as T);
  };
  diagnostics.subscribe(name, listener);
  cleanups.push(() => diagnostics.unsubscribe(name, listener));
  return seen;
}

let certDir: string;
let keyFile: string;
let certFile: string;
let tlsCert: Buffer;
let tlsKey: Buffer;
beforeAll(() => {
  const pair = makeCertificate();
  tlsCert = pair.cert;
  tlsKey = pair.key;
  certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-agent-handoff-'));
  keyFile = path.join(certDir, 'key.pem');
  certFile = path.join(certDir, 'cert.pem');
  fs.writeFileSync(keyFile, pair.key);
  fs.writeFileSync(certFile, pair.cert);
});
afterAll(() => fs.rmSync(certDir, { recursive: true, force: true }));

it(`the stock agent of this line (Node ${process.versions.node}) ${stockChecks ? 'checks' : 'does not check'} for pending reads`, async () => {
  // What the expectations below rest on: Node 22.2x+ has the handle method
  // its agents call, Node 20 has not.
  const server = net.createServer((s) => s.end());
  const port = await listen(server);
  const socket = net.connect(port, '127.0.0.1');
  try {
    await new Promise((resolve) => socket.once('connect', resolve));
    const handle = (socket as unknown as { _handle: { hasPendingRead?: unknown } })._handle;
    expect(typeof handle.hasPendingRead === 'function').toBe(stockChecks);
  } finally {
    socket.destroy();
    server.close();
  }
});

describe.each([
  { protocol: 'http', client: http, stock: () => new http.Agent({ keepAlive: true, maxSockets: 1 }), ours: () => new Agent({ maxSockets: 1 }) },
  { protocol: 'https', client: https, stock: () => new https.Agent({ keepAlive: true, maxSockets: 1 }), ours: () => new HttpsAgent({ maxSockets: 1 }) },
] as const)('$protocol: the queued hand-off race', ({ protocol, client, stock, ours }) => {
  let child: ChildProcess;
  let port: number;
  beforeAll(async () => {
    const started = await spawnFixture('agent-close-server.js', protocol === 'https' ? [keyFile, certFile] : []);
    child = started.child;
    port = Number(started.firstLine);
  });
  afterAll(() => {
    child.stdin!.end();
    child.kill();
  });
  // Read when the tests run: the certificate is made in beforeAll.
  const extra = (): https.RequestOptions => (protocol === 'https' ? { ca: tlsCert, servername: 'localhost' } : {});

  // maxSockets 1, two requests at once: the second waits in the queue. The
  // server (a child process) closes the connection right after its answer,
  // while this loop is busy for 300 ms from the moment the first request is
  // sent, and then until the kernel shows the server's FIN: at the
  // hand-off the socket is already CLOSE_WAIT, and Node has not read it.
  async function round(agent: http.Agent): Promise<{ first: Outcome; second: Outcome; sawFin: boolean }> {
    const first = start(agent, port, client, extra());
    const second = start(agent, port, client, extra());
    expect(count(fields(agent).requests)).toBe(1);
    let sawFin = false;
    const block = (): void => {
      busyWait(300);
      const socket = first.req.socket!;
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && !sawFin) sawFin = connectionState(socket).status === 'peerClosed';
    };
    // Over TCP the request is in the kernel once it has finished. Over TLS
    // it is held until the handshake is done and goes out right after
    // 'secureConnect' returns: the check phase of that same turn comes
    // before the loop can read the answer.
    first.req.once('socket', (socket: net.Socket) => {
      if (protocol === 'https') socket.once('secureConnect', () => setImmediate(block));
      else first.req.once('finish', block);
    });
    return { first: await first.done, second: await second.done, sawFin };
  }

  async function run(make: () => http.Agent, rounds: number): Promise<{ failures: number; codes: Set<string>; stale: number; agents: http.Agent[] }> {
    let failures = 0;
    const codes = new Set<string>();
    const agents: http.Agent[] = [];
    for (let i = 0; i < rounds; i++) {
      const agent = track(make());
      agents.push(agent);
      const r = await round(agent);
      expect(r).toMatchObject({ sawFin: true, first: { ok: true } });
      if (!r.second.ok) {
        failures += 1;
        codes.add(r.second.code ?? 'unknown');
      }
    }
    const stale = agents.reduce((n, a) => n + ((a as Agent).staleSocketsDestroyed ?? 0), 0);
    return { failures, codes, stale, agents };
  }

  it(`stock ${protocol}.Agent ${stockChecks ? 'passes' : 'fails'} on this line; sockstate's never fails (5 rounds each)`, async () => {
    const checks = subscribe<ReuseCheckMessage>(REUSE_CHECK_CHANNEL);
    const stockRun = await run(stock, 5);
    const ourRun = await run(ours, 5);
    console.log(
      `Node ${process.versions.node} ${protocol} queued hand-off, 5 rounds: stock ${stockRun.failures} failures (${[...stockRun.codes].join(', ')}), sockstate ${ourRun.failures}; stale sockets destroyed: ${ourRun.stale}`,
    );
    if (stockChecks) {
      expect(stockRun.failures).toBe(0);
    } else {
      expect(stockRun.failures).toBe(5);
      expect(stockRun.codes).toEqual(new Set(['ECONNRESET']));
    }
    expect(ourRun.failures).toBe(0);
    // One stale socket per round, caught at the hand-off (the free pool was
    // never used), and reported with its owner.
    expect(ourRun.stale).toBe(5);
    const evictions = checks.filter((m) => !m.reusable);
    expect(evictions).toHaveLength(5);
    for (const [i, agent] of ourRun.agents.entries()) expect(evictions[i]).toEqual({ owner: agent, reusable: false, reason: 'closed' });
    // Node's bookkeeping: the stale socket is out of every count, the
    // replacement that removeSocket() opened is the only socket left, and
    // nothing waits.
    for (const agent of ourRun.agents) {
      await waitFor(() => fields(agent).totalSocketCount === count(agent.sockets) + count(agent.freeSockets), 2000, 'the socket counts to settle');
      expect(count(fields(agent).requests)).toBe(0);
      expect(fields(agent).totalSocketCount).toBeLessThanOrEqual(1);
    }
  }, 30_000);
});

describe('healthy connections at the hand-off', () => {
  it.each([
    { protocol: 'http', make: () => new Agent({ maxSockets: 1 }) },
    { protocol: 'https', make: () => new HttpsAgent({ maxSockets: 1 }) },
  ] as const)('$protocol: six queued requests share one keep-alive connection, nothing is evicted', async ({ protocol, make }) => {
    const connections: net.Socket[] = [];
    const handler = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
      res.end('x');
    };
    const server = protocol === 'https' ? https.createServer({ key: tlsKey, cert: tlsCert }, handler) : http.createServer(handler);
    server.on(protocol === 'https' ? 'secureConnection' : 'connection', (s: net.Socket) => connections.push(s));
    const port = await listen(server);
    cleanups.push(() => {
      server.closeAllConnections();
      server.close();
    });
    const agent = track(make());
    const checks = subscribe<ReuseCheckMessage>(REUSE_CHECK_CHANNEL);
    const client = protocol === 'https' ? https : http;
    const extra = protocol === 'https' ? { ca: tlsCert, servername: 'localhost' } : {};
    const runs = await Promise.all(Array.from({ length: 6 }, () => start(agent, port, client, extra).done));
    expect(runs.every((r) => r.ok)).toBe(true);
    expect(new Set(runs.map((r) => r.localPort)).size).toBe(1);
    expect(connections).toHaveLength(1);
    expect(agent.staleSocketsDestroyed).toBe(0);
    // Five hand-offs, each checked and found idle.
    expect(checks).toEqual(Array.from({ length: 5 }, () => ({ owner: agent, reusable: true, reason: 'idle' })));
  });

  it.each([
    { protocol: 'http', make: () => new Agent({ maxSockets: 1 }) },
    { protocol: 'https', make: () => new HttpsAgent({ maxSockets: 1 }) },
  ] as const)('$protocol: a connection removeSocket() has only just started is not checked', async ({ protocol, make }) => {
    // `Connection: close`: the first socket is destroyed after its response;
    // its 'close' makes removeSocket() open a connection for the queued
    // request and emit 'free' on it while it is still connecting.
    const handler = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
      res.setHeader('Connection', 'close');
      res.end('x');
    };
    const server = protocol === 'https' ? https.createServer({ key: tlsKey, cert: tlsCert }, handler) : http.createServer(handler);
    let accepted = 0;
    server.on('connection', () => (accepted += 1));
    const port = await listen(server);
    cleanups.push(() => {
      server.closeAllConnections();
      server.close();
    });
    const agent = track(make());
    const checks = subscribe<ReuseCheckMessage>(REUSE_CHECK_CHANNEL);
    const announced = subscribe<ConnectionMessage>(CONNECTION_CHANNEL);
    const client = protocol === 'https' ? https : http;
    const extra = protocol === 'https' ? { ca: tlsCert, servername: 'localhost' } : {};
    const freeOnConnecting: boolean[] = [];
    agent.on('free', (s: net.Socket) => freeOnConnecting.push(s.connecting));
    const runs = await Promise.all([start(agent, port, client, extra).done, start(agent, port, client, extra).done]);
    expect(runs.map((r) => r.ok)).toEqual([true, true]);
    expect(accepted).toBe(2);
    // Node did emit 'free' on the connecting socket, and the guard let it be.
    expect(freeOnConnecting).toContain(true);
    expect(agent.staleSocketsDestroyed).toBe(0);
    expect(checks).toEqual([]);
    // Both connections were announced, once each, with their owner.
    expect(announced).toHaveLength(2);
    for (const m of announced) expect(m.owner).toBe(agent);
    expect(new Set(announced.map((m) => m.socket)).size).toBe(2);
  });
});

describe('a check that itself fails (the fd is gone: EBADF)', () => {
  // The socket's fd is swapped for a closed one as the check comes: Node's
  // own use of the handle is unaffected, sockstate's poll gets EBADF.
  function breakFd(socket: net.Socket): void {
    const handle = (socket as unknown as { _handle: object })._handle;
    Object.defineProperty(handle, 'fd', { value: 100_000, configurable: true });
  }

  async function setUp(maxSockets: number): Promise<{ agent: Agent; port: number; checks: ReuseCheckMessage[]; warnings: Error[] }> {
    const server = http.createServer((_req, res) => res.end('x'));
    server.keepAliveTimeout = 60_000;
    const port = await listen(server);
    cleanups.push(() => {
      server.closeAllConnections();
      server.close();
    });
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    cleanups.push(() => process.off('warning', onWarning));
    return { agent: track(new Agent({ maxSockets })), port, checks: subscribe<ReuseCheckMessage>(REUSE_CHECK_CHANNEL), warnings };
  }

  it('at the queued hand-off: the socket is destroyed and counted, the error goes out as a warning, the request gets a new connection', async () => {
    const { agent, port, checks, warnings } = await setUp(1);
    const first = start(agent, port, http);
    const second = start(agent, port, http);
    first.req.once('response', () => breakFd(first.req.socket!));
    const [a, b] = await Promise.all([first.done, second.done]);
    expect(a).toMatchObject({ ok: true });
    expect(b).toMatchObject({ ok: true, reused: false });
    expect(b.localPort).not.toBe(a.localPort);
    expect(agent.staleSocketsDestroyed).toBe(1);
    expect(checks).toEqual([{ owner: agent, reusable: false, reason: 'error' }]);
    await waitFor(() => warnings.length > 0, 2000, 'the warning');
    expect(warnings).toEqual([expect.objectContaining({ name: 'SockstateError', code: 'EBADF' })]);
  });

  it('in the free pool: the socket is destroyed and counted, the error goes out as a warning, the request gets a new connection', async () => {
    // Node's free-socket 'error' listener destroys a pooled socket and
    // drops the error: passed to destroy(), it would reach nobody.
    const { agent, port, checks, warnings } = await setUp(Number.POSITIVE_INFINITY);
    const first = await start(agent, port, http).done;
    await new Promise((resolve) => setImmediate(resolve));
    const [socket] = Object.values(agent.freeSockets)[0]!;
    breakFd(socket!);
    const next = await start(agent, port, http).done;
    expect(next).toMatchObject({ ok: true, reused: false });
    expect(next.localPort).not.toBe(first.localPort);
    expect(agent.staleSocketsDestroyed).toBe(1);
    expect(checks).toEqual([{ owner: agent, reusable: false, reason: 'error' }]);
    await waitFor(() => socket!.closed, 2000, 'the socket to close');
    await waitFor(() => warnings.length > 0, 2000, 'the warning');
    expect(warnings).toEqual([expect.objectContaining({ name: 'SockstateError', code: 'EBADF' })]);
  });
});
