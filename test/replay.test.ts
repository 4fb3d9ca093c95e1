import { type ChildProcess, spawn } from 'node:child_process';
import * as diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent as HttpAgent, HttpsAgent } from '../src/integrations/agent';
import { CONNECTION_CHANNEL, type ConnectionMessage, REPLAY_CHANNEL, type ReplayMessage } from '../src/policy/channel';
import { connectionState } from '../src/index';
import { type Figures, isReplaySafe, undelivered } from '../src/policy/replay';
import { guardUndici, type UndiciModule } from '../src/integrations/undici/guard';
import { native } from '../src/probe/native';
import { fixtures, listen } from './helpers/sockets';
import { makeCertificate } from './helpers/tls';

// The keep-alive race that no check before sending can see, made
// deterministic: right before a request is written on a reused connection
// (undici's 'undici:client:sendHeaders' channel, published before the
// write; for node:http, the socket's write()), the server is told to close
// its idle connections (SIGUSR2), and the test waits, blocking, until the
// server's FIN is in our kernel. The request then goes out on a connection
// the server has closed, whose kernel answers with a reset. The server, in
// a child process, counts by id every request its application read.

describe('the rule, on the kernel figures taken before the write and at death', () => {
  // A reused connection: 1,000 bytes acknowledged and 2,000 received so far.
  const base: Figures = {
    responded: false,
    wroteHere: true,
    acked: 1000,
    received: 2000,
    read: 2000,
    finalAcked: 1000,
    finalReceived: 2001,
    finalUnread: 0,
    finalRead: 2000,
  };
  it.each<[string, Partial<Figures>, boolean]>([
    ['the FIN alone arrived, acknowledging nothing of the request', {}, true],
    ['the FIN arrived after bytes Node read (a TLS close_notify)', { finalReceived: 2025, finalRead: 2024 }, true],
    ['the FIN and bytes still unread in the kernel', { finalReceived: 2004, finalUnread: 3 }, true],
    ['one byte of data and no FIN, unread', { finalUnread: 1 }, false],
    ['one byte of data and no FIN, read by Node', { finalRead: 2001 }, false],
    ['a reset with nothing before it (the server read the request, then reset)', { finalReceived: 2000 }, false],
    ['the FIN acknowledged part of the request', { finalAcked: 1010 }, false],
    ['the FIN acknowledged all of it', { finalAcked: 1101 }, false],
    ['a response to it began', { responded: true }, false],
    ['the request never went out on this connection', { wroteHere: false }, false],
    ['a figure could not be read', { finalReceived: Number.NaN }, false],
    ['the bytes Node read are unknown', { read: Number.NaN, finalRead: Number.NaN }, false],
  ])('%s', (_name, change, expected) => {
    expect(undelivered({ ...base, ...change })).toBe(expected);
  });
});

const [nodeMajor, nodeMinor] = process.versions.node.split('.').map(Number) as [number, number];
const undici8Runs = nodeMajor > 22 || (nodeMajor === 22 && nodeMinor >= 19);

interface Server {
  readonly origin: string;
  readonly socketPath: string | null;
  readonly child: ChildProcess;
  counts(): Promise<Record<string, number>>;
  connections(): Promise<number>;
  stop(): Promise<void>;
}

async function startServer(options: { tls?: { key: Buffer; cert: Buffer }; unix?: boolean } = {}): Promise<Server> {
  const args = [path.join(fixtures, 'replay-server.js')];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-replay-'));
  if (options.tls !== undefined) {
    fs.writeFileSync(path.join(dir, 'key.pem'), options.tls.key);
    fs.writeFileSync(path.join(dir, 'cert.pem'), options.tls.cert);
    args.push(path.join(dir, 'key.pem'), path.join(dir, 'cert.pem'));
  }
  const socketPath = options.unix === true ? path.join(dir, 'server.sock') : null;
  if (socketPath !== null) args.push('--unix', socketPath);
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = (await lines.next()).value as string;
  const origin = socketPath !== null ? 'http://localhost' : `${options.tls ? 'https' : 'http'}://127.0.0.1:${first}`;
  return {
    origin,
    socketPath,
    child,
    async counts() {
      child.stdin!.write('counts\n');
      return JSON.parse((await lines.next()).value as string) as Record<string, number>;
    },
    async connections() {
      child.stdin!.write('connections\n');
      return JSON.parse((await lines.next()).value as string) as number;
    },
    async stop() {
      child.stdin!.end();
      if (child.exitCode === null) await once(child, 'exit');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Has the server close its idle connections and blocks until the FIN of
 * `socket`'s connection is in our kernel.
 */
function closeFirst(server: Server, socket: net.Socket): void {
  process.kill(server.child.pid!, 'SIGUSR2');
  const deadline = Date.now() + 5000;
  while (!connectionState(socket).readClosed) {
    if (Date.now() > deadline) throw new Error('the server did not close the idle connection');
  }
}

/** Races every request written on a reused connection (or every request, with `fresh`) while armed. */
class Race {
  armed = false;
  raced = 0;
  fresh = false;
  /** Disarm after one race. */
  once = false;
  /** Race exactly the requests that carry `x-race: 1`, whenever they are written. */
  byHeader = false;
  readonly #listener = (message: unknown): void => {
    const { socket, headers } = message as { socket: net.Socket; headers: unknown };
    const asked = this.byHeader ? /\r\nx-race: 1\r\n/i.test(String(headers)) : this.armed;
    if (!asked || (!this.fresh && socket.bytesWritten === 0)) return;
    if (this.once) this.armed = false;
    this.raced += 1;
    closeFirst(this.server, socket);
  };

  constructor(private readonly server: Server) {
    diagnostics.subscribe('undici:client:sendHeaders', this.#listener);
  }

  stop(): void {
    diagnostics.unsubscribe('undici:client:sendHeaders', this.#listener);
  }
}

const replays: ReplayMessage[] = [];
const onReplay = (message: unknown): void => {
  replays.push(message as ReplayMessage);
};

type Dispatcher = {
  request(options: object): Promise<{ statusCode: number; body: { text(): Promise<string> } }>;
  close(): Promise<void>;
  readonly replayedRequests: number;
};

interface Outcome {
  failed: number;
  errors: unknown[];
  bodies: string[];
}

async function post(dispatcher: Dispatcher, server: Server, ids: string[], extra: (id: string) => object = () => ({})): Promise<Outcome> {
  const outcome: Outcome = { failed: 0, errors: [], bodies: [] };
  for (const id of ids) {
    try {
      const res = await dispatcher.request({
        origin: server.origin,
        path: '/',
        method: 'POST',
        headers: { 'x-id': id, 'content-type': 'application/json' },
        body: JSON.stringify({ id }),
        ...extra(id),
      });
      outcome.bodies.push((await res.body.text()).trim());
    } catch (err) {
      outcome.failed += 1;
      outcome.errors.push(err);
    }
    // undici marks the connection idle a moment after the body ends; a
    // request sent before then would open another connection, not reuse.
    await new Promise(setImmediate);
  }
  return outcome;
}

const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

let certificate: { key: Buffer; cert: Buffer };
beforeAll(() => {
  certificate = makeCertificate();
  diagnostics.subscribe(REPLAY_CHANNEL, onReplay);
});
afterAll(() => {
  diagnostics.unsubscribe(REPLAY_CHANNEL, onReplay);
});

const majors: { pkg: string; runs: boolean }[] = [
  { pkg: 'undici6', runs: true },
  { pkg: 'undici7', runs: true },
  { pkg: 'undici8', runs: undici8Runs },
];

describe.each(majors)('$pkg: POSTs raced by the server closing first', ({ pkg, runs }) => {
  for (const scheme of ['http', 'https'] as const) {
    it.runIf(runs)(`${scheme}: stock fails every raced POST; guarded sends each again once, and the server reads each exactly once`, async () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const undici = require(pkg) as UndiciModule;
      const guarded = guardUndici(undici);
      const server = await startServer(scheme === 'https' ? { tls: certificate } : {});
      const race = new Race(server);
      const connect = { rejectUnauthorized: false };
      try {
        const stock = new undici.Agent({ connect }) as unknown as Dispatcher;
        await post(stock, server, ['stock-warm']);
        race.armed = true;
        const stockRun = await post(stock, server, ids('stock-', 10));
        race.armed = false;
        // Each failure costs the connection, so every other request is raced.
        expect(race.raced).toBe(5);
        expect(stockRun.failed).toBe(5);
        await stock.close();

        race.raced = 0;
        replays.length = 0;
        const agent = new guarded.Agent({ connect }) as unknown as Dispatcher;
        await post(agent, server, ['warm']);
        race.armed = true;
        const run = await post(agent, server, ids('r', 10));
        race.armed = false;
        expect(run.errors).toEqual([]);
        expect(run.bodies).toEqual(ids('r', 10));
        expect(race.raced).toBe(10);
        expect(agent.replayedRequests).toBe(10);
        expect(replays.filter((m) => m.owner === agent)).toHaveLength(10);
        expect(replays[0]).toMatchObject({ origin: server.origin, method: 'POST', path: '/' });
        const counts = await server.counts();
        expect(ids('stock-', 10).filter((id) => counts[id] === undefined)).toHaveLength(5);
        for (const id of ids('r', 10)) expect(counts[id]).toBe(1);
        await agent.close();
      } finally {
        race.stop();
        await server.stop();
      }
    });
  }
});

describe('an eviction replaces the connection in place', () => {
  it.each(majors.filter((m) => m.runs))('$pkg: 7 requests with one eviction take 2 connections, and no disconnect is reported', async ({ pkg }) => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const guarded = guardUndici(require(pkg) as UndiciModule);
    const server = await startServer();
    const agent = new guarded.Agent() as unknown as Dispatcher & { on(e: string, f: (...a: unknown[]) => void): void; staleSocketsDestroyed: number };
    const disconnects: unknown[] = [];
    agent.on('disconnect', (_origin, _targets, err) => disconnects.push(err));
    const sockets: net.Socket[] = [];
    const onConnection = (m: unknown): void => {
      sockets.push((m as ConnectionMessage).socket as net.Socket);
    };
    diagnostics.subscribe(CONNECTION_CHANNEL, onConnection);
    try {
      await post(agent, server, ids('e', 3));
      expect(sockets).toHaveLength(1);
      // The server closes the idle connection, and its FIN is here before
      // the next request is dispatched: the guard evicts the socket.
      closeFirst(server, sockets[0]!);
      await post(agent, server, ids('f', 4));
      expect(agent.staleSocketsDestroyed).toBe(1);
      expect(await server.connections()).toBe(2);
      expect(disconnects).toEqual([]);
    } finally {
      diagnostics.unsubscribe(CONNECTION_CHANNEL, onConnection);
      await agent.close();
      await server.stop();
    }
  });
});

describe('fetch() through a guarded Agent', () => {
  it(`Node ${process.versions.node}'s built-in fetch: raced POSTs with a string body are sent again, each read once`, async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const guarded = guardUndici(require('undici7') as UndiciModule);
    const server = await startServer();
    const race = new Race(server);
    const agent = new guarded.Agent() as unknown as Dispatcher;
    const send = async (id: string): Promise<string> => {
      const res = await fetch(`${server.origin}/`, {
        method: 'POST',
        headers: { 'x-id': id },
        body: JSON.stringify({ id }),
        dispatcher: agent,
      } as unknown as RequestInit);
      return (await res.text()).trim();
    };
    try {
      await send('warm');
      await new Promise(setImmediate);
      race.armed = true;
      const bodies: string[] = [];
      for (const id of ids('f', 10)) {
        bodies.push(await send(id));
        await new Promise(setImmediate);
      }
      race.armed = false;
      expect(bodies).toEqual(ids('f', 10));
      expect(race.raced).toBe(10);
      expect(agent.replayedRequests).toBe(10);
      const counts = await server.counts();
      for (const id of ids('f', 10)) expect(counts[id]).toBe(1);

      // With replay off, fetch's TypeError carries the verdict in its cause.
      const off = new guarded.Agent({ replay: false }) as unknown as Dispatcher;
      const res = await fetch(`${server.origin}/`, { method: 'POST', headers: { 'x-id': 'off-warm' }, body: 'x', dispatcher: off } as unknown as RequestInit);
      await res.text();
      await new Promise(setImmediate);
      race.armed = true;
      const err = await fetch(`${server.origin}/`, { method: 'POST', headers: { 'x-id': 'off' }, body: 'x', dispatcher: off } as unknown as RequestInit).then(
        () => null,
        (e: unknown) => e,
      );
      race.armed = false;
      expect(err).toBeInstanceOf(TypeError);
      expect(isReplaySafe(err)).toBe(true);
      expect(off.replayedRequests).toBe(0);
      expect((await server.counts()).off).toBeUndefined();
      await off.close();
    } finally {
      race.stop();
      await agent.close();
      await server.stop();
    }
  });
});

describe('what is never replayed', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const undici = require('undici7') as UndiciModule;
  const guarded = guardUndici(undici);
  let server: Server;
  let race: Race;
  beforeAll(async () => {
    server = await startServer();
    race = new Race(server);
  });
  afterAll(async () => {
    race.stop();
    await server.stop();
  });

  it.each(['read-fin', 'read-rst'])('a server that read the request and then dropped the connection (%s): the error reaches the caller, not replay-safe', async (mode) => {
    const agent = new guarded.Agent() as unknown as Dispatcher;
    await post(agent, server, [`${mode}-warm`]);
    const run = await post(agent, server, [`${mode}-1`], () => ({ headers: { 'x-id': `${mode}-1`, 'x-mode': mode } }));
    expect(run.failed).toBe(1);
    expect(isReplaySafe(run.errors[0])).toBe(false);
    expect(agent.replayedRequests).toBe(0);
    expect((await server.counts())[`${mode}-1`]).toBe(1);
    await agent.close();
  });

  it('a streamed body: not sent again, and its error is marked replay-safe', async () => {
    const agent = new guarded.Agent() as unknown as Dispatcher;
    await post(agent, server, ['stream-warm']);
    race.armed = true;
    const run = await post(agent, server, ['stream-1'], () => ({
      headers: { 'x-id': 'stream-1', 'content-length': '9' },
      body: Readable.from([Buffer.from('{"a":'), Buffer.from('1}\n\n')]),
    }));
    race.armed = false;
    expect(run.failed).toBe(1);
    expect(isReplaySafe(run.errors[0])).toBe(true);
    expect(agent.replayedRequests).toBe(0);
    expect((await server.counts())['stream-1']).toBeUndefined();
    await agent.close();
  });

  it('replay: false: the error reaches the caller, marked replay-safe', async () => {
    const agent = new guarded.Agent({ replay: false }) as unknown as Dispatcher;
    await post(agent, server, ['off-warm']);
    race.armed = true;
    const run = await post(agent, server, ['off-1']);
    race.armed = false;
    expect(run.failed).toBe(1);
    expect((run.errors[0] as { code?: string }).code).toMatch(/^(UND_ERR_SOCKET|ECONNRESET|EPIPE)$/);
    expect(isReplaySafe(run.errors[0])).toBe(true);
    expect((await server.counts())['off-1']).toBeUndefined();
    await agent.close();
  });

  it('a request already sent again once is not sent a third time', async () => {
    const agent = new guarded.Agent() as unknown as Dispatcher;
    await post(agent, server, ['twice-warm']);
    race.armed = true;
    race.fresh = true;
    const run = await post(agent, server, ['twice-1']);
    race.armed = false;
    race.fresh = false;
    expect(run.failed).toBe(1);
    expect(agent.replayedRequests).toBe(1);
    // The second attempt went out on a new connection: nothing to prove.
    expect(isReplaySafe(run.errors[0])).toBe(false);
    expect((await server.counts())['twice-1']).toBeUndefined();
    await agent.close();
  });

  it('a connection that never carried a request behaves as before: no replay, no verdict', async () => {
    const agent = new guarded.Agent() as unknown as Dispatcher;
    race.armed = true;
    race.fresh = true;
    const run = await post(agent, server, ['fresh-1']);
    race.armed = false;
    race.fresh = false;
    expect(run.failed).toBe(1);
    expect(agent.replayedRequests).toBe(0);
    expect(isReplaySafe(run.errors[0])).toBe(false);
    await agent.close();
  });

  it('pipelining: only the request sent on an idle connection is sent again', async () => {
    const client = new guarded.Client(server.origin, { pipelining: 2 }) as unknown as Dispatcher;
    await post(client, server, ['pipe-warm']);
    await new Promise(setImmediate);
    // Only the first write is raced: the replay, pipelined on the new
    // connection behind the second request, must not be raced again.
    race.once = true;
    race.armed = true;
    const settled = await Promise.allSettled(
      ['pipe-1', 'pipe-2'].map((id) =>
        client.request({ path: '/', method: 'POST', headers: { 'x-id': id }, body: id }).then(async (r) => (await r.body.text()).trim()),
      ),
    );
    race.armed = false;
    race.once = false;
    // The first went out on the idle connection and is proven undelivered;
    // the second was dispatched behind it, where the kernel cannot speak
    // for it alone: undici itself retries or fails it, sockstate never.
    expect(settled[0], String((settled[0] as { reason?: unknown }).reason)).toEqual({ status: 'fulfilled', value: 'pipe-1' });
    expect(client.replayedRequests).toBe(1);
    const counts = await server.counts();
    expect(counts['pipe-1']).toBe(1);
    expect(counts['pipe-2'] ?? 0).toBeLessThanOrEqual(1);
    const second = settled[1]!;
    if (second.status === 'rejected') expect(isReplaySafe(second.reason)).toBe(false);
    await client.close();
  });
});

describe('HTTP/2', () => {
  it('an h2 connection is left to undici: no byte counts taken, nothing sent again; the same requests over HTTP/1.1 are watched', async () => {
    const server = http2.createSecureServer({ key: certificate.key, cert: certificate.cert, allowHTTP1: true });
    let sessions = 0;
    server.on('session', () => {
      sessions += 1;
    });
    server.on('request', (req, res) => {
      req.resume();
      req.on('end', () => res.end(`${req.httpVersion} ok`));
    });
    const port = await listen(server);
    const binding = native! as unknown as { sample: (...args: unknown[]) => number };
    const sample = binding.sample;
    let samples = 0;
    binding.sample = (...args: unknown[]) => {
      samples += 1;
      return sample.apply(native, args);
    };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const guarded = guardUndici(require('undici7') as UndiciModule);
    const connect = { rejectUnauthorized: false };
    const run = async (allowH2: boolean): Promise<{ bodies: string[]; samples: number; agent: Dispatcher }> => {
      const agent = new guarded.Agent({ allowH2, connect }) as unknown as Dispatcher;
      samples = 0;
      const bodies: string[] = [];
      for (const id of ['a', 'b', 'c']) {
        const res = await agent.request({ origin: `https://localhost:${port}`, path: '/', method: 'POST', headers: { 'x-id': id }, body: id });
        bodies.push(await res.body.text());
        await new Promise(setImmediate);
      }
      await agent.close();
      return { bodies, samples, agent };
    };
    try {
      const h2 = await run(true);
      expect(h2.bodies).toEqual(['2.0 ok', '2.0 ok', '2.0 ok']);
      expect(h2.samples).toBe(0);
      expect(h2.agent.replayedRequests).toBe(0);
      expect(sessions).toBe(1);
      // The control: over HTTP/1.1 the two requests on the reused connection are watched.
      const h1 = await run(false);
      expect(h1.bodies).toEqual(['1.1 ok', '1.1 ok', '1.1 ok']);
      expect(h1.samples).toBe(2);
    } finally {
      binding.sample = sample;
      server.close();
    }
  });
});

describe('over a Unix socket', () => {
  it('no TCP_INFO, so never replay-safe: the raced request fails as before', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const guarded = guardUndici(require('undici7') as UndiciModule);
    const server = await startServer({ unix: true });
    const race = new Race(server);
    const agent = new guarded.Agent({ connect: { socketPath: server.socketPath } }) as unknown as Dispatcher;
    try {
      await post(agent, server, ['unix-warm']);
      race.armed = true;
      const run = await post(agent, server, ['unix-1']);
      race.armed = false;
      expect(race.raced).toBe(1);
      expect(run.failed).toBe(1);
      expect(isReplaySafe(run.errors[0])).toBe(false);
      expect(agent.replayedRequests).toBe(0);
      expect((await server.counts())['unix-1']).toBeUndefined();
    } finally {
      race.stop();
      await agent.close();
      await server.stop();
    }
  });
});

describe('2,000 mixed requests under random closes, resets and delays', () => {
  it('every request settles and none is read twice', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const guarded = guardUndici(require('undici7') as UndiciModule);
    const server = await startServer();
    const race = new Race(server);
    const agent = new guarded.Agent({ connections: 4 }) as unknown as Dispatcher;
    race.byHeader = true;
    // A fixed sequence (a linear congruential generator), so a failure can be rerun.
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const modes = ['ok', 'ok', 'ok', 'delay', 'answer-close', 'read-fin', 'read-rst'];
    const plan = Array.from({ length: 2000 }, (_, i) => ({ id: `m${i}`, mode: modes[Math.floor(random() * modes.length)]!, race: random() < 0.1 }));
    const failedModes: string[] = [];
    const unexpected: object[] = [];
    let settled = 0;
    try {
      for (let i = 0; i < plan.length; i += 8) {
        await Promise.all(
          plan.slice(i, i + 8).map(async ({ id, mode, race: raced }) => {
            const headers = { 'x-id': id, 'x-mode': mode, 'x-race': raced ? '1' : '0' };
            const request = agent.request({ origin: server.origin, path: '/', method: 'PUT', headers, body: id });
            try {
              const res = await request;
              expect((await res.body.text()).trim()).toBe(id);
            } catch (err) {
              failedModes.push(mode);
              if (mode !== 'read-fin' && mode !== 'read-rst') unexpected.push({ id, mode, code: (err as { code?: string }).code, safe: isReplaySafe(err) });
            }
            settled += 1;
          }),
        );
      }
      expect(settled).toBe(2000);
      const counts = await server.counts();
      expect(Object.keys(counts)).not.toHaveLength(0);
      expect(Math.max(...Object.values(counts))).toBe(1);
      // Every request the server read and dropped failed, and none of
      // those was sent again.
      expect(failedModes.filter((m) => m === 'read-fin' || m === 'read-rst')).toHaveLength(plan.filter((p) => p.mode === 'read-fin' || p.mode === 'read-rst').length);
      expect(agent.replayedRequests).toBeGreaterThan(0);
      // Other failures are connections the server closed with our request
      // unread in its kernel: a reset with no FIN, which proves nothing.
      expect(unexpected.filter((u) => (u as { safe: boolean }).safe)).toEqual([]);
    } finally {
      race.stop();
      await agent.close();
      await server.stop();
    }
  }, 120_000);
});

describe('node:http agents', () => {
  // Races the first write of each request on a reused socket of `agent`.
  function raceAgent(server: Server): { armed: boolean; raced: number; stop(): void } {
    const state = { armed: false, raced: 0, stop: () => diagnostics.unsubscribe(CONNECTION_CHANNEL, onConnection) };
    let last: unknown = null;
    function onConnection(message: unknown): void {
      const socket = (message as ConnectionMessage).socket as net.Socket & { _httpMessage?: unknown };
      const write = socket.write;
      // The request the connection was opened for is never raced.
      let first: unknown;
      socket.write = function (this: typeof socket, ...args: unknown[]): boolean {
        first ??= this._httpMessage;
        if (state.armed && this._httpMessage !== first && this._httpMessage !== last) {
          last = this._httpMessage;
          state.raced += 1;
          closeFirst(server, this);
        }
        return (write as (...a: unknown[]) => boolean).apply(this, args);
      } as typeof socket.write;
    }
    diagnostics.subscribe(CONNECTION_CHANNEL, onConnection);
    return state;
  }

  function send(agent: http.Agent, server: Server, id: string, secure: boolean): Promise<string> {
    return new Promise((resolve, reject) => {
      const body = JSON.stringify({ id });
      const url = new URL(server.origin);
      const req = (secure ? https : http).request(
        { host: url.hostname, port: url.port, method: 'POST', agent, headers: { 'x-id': id, 'content-length': body.length }, rejectUnauthorized: false },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve(text.trim()));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  for (const secure of [false, true]) {
    it(`${secure ? 'HttpsAgent' : 'Agent'}: every raced POST fails replay-safe, and sending those again reaches the server once each`, async () => {
      const server = await startServer(secure ? { tls: certificate } : {});
      const race = raceAgent(server);
      const agent = secure ? new HttpsAgent({ maxSockets: 1 }) : new HttpAgent({ maxSockets: 1 });
      try {
        await send(agent, server, 'warm', secure);
        let failed = 0;
        let marked = 0;
        const bodies: string[] = [];
        for (const id of ids('a', 10)) {
          race.armed = true;
          try {
            bodies.push(await send(agent, server, id, secure));
          } catch (err) {
            failed += 1;
            if (isReplaySafe(err)) marked += 1;
            race.armed = false;
            // What a retry hook keyed on isReplaySafe does.
            bodies.push(await send(agent, server, id, secure));
          }
          race.armed = false;
        }
        expect(race.raced).toBe(10);
        expect(failed).toBe(10);
        expect(marked).toBe(10);
        expect(bodies).toEqual(ids('a', 10));
        const counts = await server.counts();
        for (const id of ids('a', 10)) expect(counts[id]).toBe(1);
      } finally {
        race.stop();
        agent.destroy();
        await server.stop();
      }
    });
  }

  it('got and axios-retry as examples/replay-retry.mjs sets them up: a raced POST is sent again and read once; one the server read is not', async () => {
    type Example = {
      agent: http.Agent;
      gotClient: { post(url: string, options: object): { text(): Promise<string> } };
      axiosClient: { post(url: string, body: string, options: object): Promise<{ data: string }> };
    };
    const server = await startServer();
    const race = raceAgent(server);
    const example = (await import(pathToFileURL(path.join(__dirname, '..', 'examples', 'replay-retry.mjs')).href)) as Example;
    const url = `${server.origin}/`;
    const viaGot = (id: string, mode = 'ok'): Promise<string> => example.gotClient.post(url, { headers: { 'x-id': id, 'x-mode': mode }, body: id }).text();
    const viaAxios = async (id: string, mode = 'ok'): Promise<string> => (await example.axiosClient.post(url, id, { headers: { 'x-id': id, 'x-mode': mode } })).data;
    try {
      for (const [name, send] of [['got', viaGot], ['axios', viaAxios]] as const) {
        await send(`${name}-warm`);
        race.armed = true;
        expect((await send(`${name}-raced`)).trim()).toBe(`${name}-raced`);
        race.armed = false;
        // The server read this one, then reset: no retry of a POST.
        const err = await send(`${name}-read`, 'read-rst').then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toMatchObject({ code: 'ECONNRESET' });
        expect(isReplaySafe(err)).toBe(false);
      }
      expect(race.raced).toBe(2);
      const counts = await server.counts();
      expect(counts).toMatchObject({ 'got-raced': 1, 'got-read': 1, 'axios-raced': 1, 'axios-read': 1 });
    } finally {
      race.stop();
      example.agent.destroy();
      await server.stop();
    }
  });

  it('Agent: a server that read the request and then closed: the error is not replay-safe', async () => {
    const server = await startServer();
    const agent = new HttpAgent({ maxSockets: 1 });
    try {
      await send(agent, server, 'warm', false);
      for (const mode of ['read-fin', 'read-rst']) {
        const err = await new Promise<unknown>((resolve) => {
          const req = http.request({ host: '127.0.0.1', port: new URL(server.origin).port, method: 'POST', agent, headers: { 'x-id': mode, 'x-mode': mode } }, () => resolve(null));
          req.on('error', resolve);
          req.end('x');
        });
        expect(err).toBeInstanceOf(Error);
        expect(isReplaySafe(err)).toBe(false);
        await send(agent, server, `${mode}-next`, false);
      }
      const counts = await server.counts();
      expect(counts['read-fin']).toBe(1);
      expect(counts['read-rst']).toBe(1);
    } finally {
      agent.destroy();
      await server.stop();
    }
  });

  it('Agent, queued hand-off: the server closes right after answering; a queued request fails only replay-safe', async () => {
    const server = await startServer();
    const race = raceAgent(server);
    const agent = new HttpAgent({ maxSockets: 1 });
    const port = new URL(server.origin).port;
    try {
      let failed = 0;
      let marked = 0;
      for (let round = 0; round < 5; round += 1) {
        // The first request opens a connection (never raced); the second
        // waits for it and takes it at the hand-off, raced.
        race.armed = true;
        const first = new Promise<string>((resolve, reject) => {
          const req = http.request({ host: '127.0.0.1', port, method: 'POST', agent, headers: { 'x-id': `h${round}-a`, 'x-mode': 'answer-close' } }, (res) => {
            res.resume();
            res.on('end', () => resolve('a'));
          });
          req.on('error', reject);
          req.end('a');
        });
        const second = send(agent, server, `h${round}-b`, false).catch((err: unknown) => {
          failed += 1;
          if (isReplaySafe(err)) marked += 1;
          return 'failed';
        });
        await Promise.allSettled([first, second]);
        race.armed = false;
      }
      expect(failed).toBe(marked);
      const counts = await server.counts();
      for (let round = 0; round < 5; round += 1) expect(counts[`h${round}-b`] ?? 0).toBeLessThanOrEqual(1);
    } finally {
      race.stop();
      agent.destroy();
      await server.stop();
    }
  });
});
