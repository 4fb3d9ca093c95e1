import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../src/integrations/agent';
import { type Outcome, request, settle, spinUntilPeerClosed, type Started } from './helpers/http-agent';
import { busyWait, spawnFixture } from './helpers/sockets';

// Both reuse paths (a socket taken from the free pool, one handed to a
// queued request) over the other transports an agent can use: an AF_UNIX
// server through `socketPath`, and sockets made by a subclass's own
// createConnection(). Node's stock agent runs the same scenario: on Node 20
// it reuses the dead socket; Node 22.2x+ (22.23.5, 24.22.3, 26.12.1 in CI)
// checks for pending reads itself and skips it too.
const stockChecks = Number(process.versions.node.split('.')[0]) >= 22;

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function start(agent: http.Agent, target: http.RequestOptions): Started {
  return request(agent, target);
}

// An in-process HTTP server that keeps connections open; the test closes
// them behind the client's back.
async function server(listenOn: string | number): Promise<{ target: http.RequestOptions; peers: net.Socket[] }> {
  const peers: net.Socket[] = [];
  const srv = http.createServer((_req, res) => res.end('x'));
  srv.keepAliveTimeout = 60_000;
  srv.on('connection', (s: net.Socket) => peers.push(s));
  await new Promise<void>((resolve) => (typeof listenOn === 'string' ? srv.listen(listenOn, resolve) : srv.listen(listenOn, '127.0.0.1', resolve)));
  cleanups.push(() => {
    srv.closeAllConnections();
    srv.close();
  });
  const target = typeof listenOn === 'string' ? { socketPath: listenOn } : { host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port };
  return { target, peers };
}

// A server in a child process that ends each connection right after its
// answer (test/fixtures/agent-close-server.js): it must run while this
// loop is blocked.
async function closingServer(unixPath?: string): Promise<http.RequestOptions> {
  const { child, firstLine } = await spawnFixture('agent-close-server.js', unixPath === undefined ? [] : ['--path', unixPath]);
  cleanups.push(() => {
    child.stdin!.end();
    child.kill();
  });
  return unixPath === undefined ? { host: '127.0.0.1', port: Number(firstLine) } : { socketPath: firstLine };
}

// The free pool: the server closes the pooled connection while the loop
// is busy; the next request must not go out on it.
async function freePoolRace(agent: http.Agent, target: http.RequestOptions, peers: net.Socket[]): Promise<Outcome> {
  cleanups.push(() => agent.destroy());
  expect((await start(agent, target).done).ok).toBe(true);
  await settle();
  const [socket] = Object.values(agent.freeSockets)[0]!;
  peers.at(-1)!.destroy();
  spinUntilPeerClosed(socket!);
  return start(agent, target).done;
}

// The queued hand-off: maxSockets 1, two requests; the server (a
// closingServer()) ends the connection after the first answer while the
// loop is busy.
async function handOffRace(agent: http.Agent, target: http.RequestOptions): Promise<Outcome> {
  cleanups.push(() => agent.destroy());
  const first = start(agent, target);
  const second = start(agent, target);
  first.req.once('finish', () => {
    busyWait(100);
    spinUntilPeerClosed(first.req.socket!);
  });
  expect((await first.done).ok).toBe(true);
  return second.done;
}

const stockFails = (r: { ok: boolean; code: string | undefined }): void => {
  // Node 20 writes on the dead socket: EPIPE or ECONNRESET, by the timing
  // of the peer's close against the write.
  if (stockChecks) expect(r).toMatchObject({ ok: true, reused: false });
  else expect(r.ok === false && ['EPIPE', 'ECONNRESET'].includes(r.code!)).toBe(true);
};

describe('over socketPath (AF_UNIX)', () => {
  function socketPath(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-agent-unix-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    return path.join(dir, 'http.sock');
  }

  it(`free pool: the closed connection is skipped; stock Node ${stockChecks ? 'skips it too' : 'reuses it and fails'}`, async () => {
    const { target, peers } = await server(socketPath());
    stockFails(await freePoolRace(new http.Agent({ keepAlive: true }), target, peers));
    const agent = new Agent();
    expect(await freePoolRace(agent, target, peers)).toMatchObject({ ok: true, reused: false });
    expect(agent.staleSocketsDestroyed).toBe(1);
  });

  it(`queued hand-off: the closed connection is not handed over; stock Node ${stockChecks ? 'checks it too' : 'hands it over and fails'}`, async () => {
    const target = await closingServer(socketPath());
    stockFails(await handOffRace(new http.Agent({ keepAlive: true, maxSockets: 1 }), target));
    const agent = new Agent({ maxSockets: 1 });
    expect(await handOffRace(agent, target)).toMatchObject({ ok: true, reused: false });
    expect(agent.staleSocketsDestroyed).toBe(1);
  });
});

describe("a subclass's own createConnection()", () => {
  // A typical override: its own net.connect() with options of its choosing.
  class OwnConnections extends Agent {
    made = 0;
    override createConnection(options: http.ClientRequestArgs): net.Socket {
      this.made += 1;
      return net.connect({ host: options.host!, port: Number(options.port), noDelay: true });
    }
  }

  it('free pool: its stale socket is skipped and counted, the next one comes from the override', async () => {
    const { target, peers } = await server(0);
    const agent = new OwnConnections();
    expect(await freePoolRace(agent, target, peers)).toMatchObject({ ok: true, reused: false });
    expect(agent.staleSocketsDestroyed).toBe(1);
    expect(agent.made).toBe(2);
  });

  it('queued hand-off: its stale socket is not handed over, and removeSocket() opens the next through the override', async () => {
    const target = await closingServer();
    const agent = new OwnConnections({ maxSockets: 1 });
    expect(await handOffRace(agent, target)).toMatchObject({ ok: true, reused: false });
    expect(agent.staleSocketsDestroyed).toBe(1);
    expect(agent.made).toBe(2);
  });
});
