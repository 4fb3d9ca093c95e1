import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, getKeepAlive, getUserTimeout, HttpsAgent, setKeepAlive, supported } from '../src/index';
import { listen } from './helpers/sockets';
import { makeCertificate } from './helpers/tls';

// Node's agents apply their own keepalive to each socket (http.Agent as it
// connects, https.Agent when it is first pooled), so TCP tuning must come
// after that; the agents' options do it at both points.

const TUNING = { idleMs: 5000, intervalMs: 2000, count: 3 };

async function get(agent: http.Agent, port: number, client: typeof http | typeof https = http): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const req = client.get({ host: '127.0.0.1', port, agent, rejectUnauthorized: false }, (res) => {
      res.resume().on('end', () => resolve());
    });
    req.on('error', reject);
  });
  // The socket returns to the pool once the response has been read.
  await new Promise((r) => setImmediate(r));
}

function freeSocket(agent: http.Agent): net.Socket {
  const lists = Object.values(agent.freeSockets);
  expect(lists).toHaveLength(1);
  expect(lists[0]).toHaveLength(1);
  return lists[0]![0] as net.Socket;
}

describe.runIf(supported)('Agent TCP tuning', () => {
  let server: http.Server;
  let port = 0;
  beforeAll(async () => {
    server = http.createServer((_req, res) => res.end('ok'));
    port = await listen(server);
  });
  afterAll(() => server.close());

  it("Node's stock agent sets its own keepalive on every socket before 'connect' is emitted", async () => {
    const agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 1000 });
    try {
      const req = http.get({ host: '127.0.0.1', port, agent });
      const atConnect = new Promise<unknown>((resolve) =>
        req.on('socket', (socket) => socket.once('connect', () => resolve(getKeepAlive(socket)))),
      );
      const [res] = (await once(req, 'response')) as [http.IncomingMessage];
      res.resume();
      await once(res, 'end');
      // Not the system's 7200 s / 75 s / 9: tuning made before connect is lost.
      expect(await atConnect).toEqual({ enabled: true, idleMs: 1000, intervalMs: 1000, count: 10 });
    } finally {
      agent.destroy();
    }
  });

  it('tcpKeepAlive and userTimeoutMs hold on a pooled socket', async () => {
    const agent = new Agent({ tcpKeepAlive: TUNING, userTimeoutMs: 7000 });
    try {
      await get(agent, port);
      const socket = freeSocket(agent);
      expect(getKeepAlive(socket)).toEqual({ enabled: true, ...TUNING });
      expect(getUserTimeout(socket)).toBe(7000);
      // The pooled socket serves the next request.
      await get(agent, port);
      expect(freeSocket(agent)).toBe(socket);
    } finally {
      agent.destroy();
    }
  });

  it("Node's own setKeepAlive() on a tuned socket still takes effect, and the tuning returns with the pool", async () => {
    const agent = new Agent({ tcpKeepAlive: TUNING });
    try {
      await get(agent, port);
      const socket = freeSocket(agent);
      expect(getKeepAlive(socket)).toEqual({ enabled: true, ...TUNING });
      // The values Node's agent applied before the tuning (keepAliveMsecs
      // 1000): Node must not take them for still in force.
      socket.setKeepAlive(true, 1000);
      expect(getKeepAlive(socket)).toEqual({ enabled: true, idleMs: 1000, intervalMs: 1000, count: 10 });
      // Back in the pool after its next request, the socket is tuned again.
      await get(agent, port);
      expect(freeSocket(agent)).toBe(socket);
      expect(getKeepAlive(socket)).toEqual({ enabled: true, ...TUNING });
    } finally {
      agent.destroy();
    }
  });

  it('sockets over socketPath (AF_UNIX) are served untuned, without error', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-agent-unix-'));
    const unixServer = http.createServer((_req, res) => res.end('ok'));
    unixServer.listen(path.join(dir, 'http.sock'));
    await once(unixServer, 'listening');
    const agent = new Agent({ tcpKeepAlive: TUNING, userTimeoutMs: 7000 });
    try {
      const status = await new Promise<number | undefined>((resolve, reject) => {
        const req = http.get({ socketPath: path.join(dir, 'http.sock'), agent }, (res) => {
          res.resume().on('end', () => resolve(res.statusCode));
        });
        req.on('error', reject);
      });
      expect(status).toBe(200);
    } finally {
      agent.destroy();
      unixServer.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Node's stock https.Agent replaces tuning made at connect when the socket is first pooled", async () => {
    const { key, cert } = makeCertificate();
    const tlsServer = https.createServer({ key, cert }, (_req, res) => res.end('ok'));
    const tlsPort = await listen(tlsServer);
    const agent = new https.Agent({ keepAlive: true, keepAliveMsecs: 1000 });
    try {
      const req = https.get({ host: '127.0.0.1', port: tlsPort, agent, rejectUnauthorized: false });
      let tunedAtConnect: unknown;
      req.on('socket', (socket) =>
        socket.once('connect', () => {
          setKeepAlive(socket, TUNING);
          tunedAtConnect = getKeepAlive(socket);
        }),
      );
      const [res] = (await once(req, 'response')) as [http.IncomingMessage];
      res.resume();
      await once(res, 'end');
      await new Promise((r) => setImmediate(r));
      expect(tunedAtConnect).toEqual({ enabled: true, ...TUNING });
      expect(getKeepAlive(freeSocket(agent))).toEqual({ enabled: true, idleMs: 1000, intervalMs: 1000, count: 10 });
    } finally {
      agent.destroy();
      tlsServer.close();
    }
  });

  it('HttpsAgent applies the same tuning to the TCP socket under TLS', async () => {
    const { key, cert } = makeCertificate();
    const tlsServer = https.createServer({ key, cert }, (_req, res) => res.end('ok'));
    const tlsPort = await listen(tlsServer);
    const agent = new HttpsAgent({ tcpKeepAlive: TUNING, userTimeoutMs: 9000 });
    try {
      await get(agent, tlsPort, https);
      const socket = freeSocket(agent);
      expect(getKeepAlive(socket)).toEqual({ enabled: true, ...TUNING });
      expect(getUserTimeout(socket)).toBe(9000);
    } finally {
      agent.destroy();
      tlsServer.close();
      await once(tlsServer, 'close');
    }
  });
});

describe('Agent TCP tuning options are validated when the agent is made', () => {
  it.each([
    [{ tcpKeepAlive: { idleMs: 1500 } }, RangeError, 'ERR_OUT_OF_RANGE', /"options\.tcpKeepAlive\.idleMs"/],
    [{ tcpKeepAlive: { count: 0 } }, RangeError, 'ERR_OUT_OF_RANGE', /"options\.tcpKeepAlive\.count"/],
    [{ tcpKeepAlive: 'yes' }, TypeError, 'ERR_INVALID_ARG_TYPE', /"options\.tcpKeepAlive"/],
    [{ userTimeoutMs: -1 }, RangeError, 'ERR_OUT_OF_RANGE', /"options\.userTimeoutMs"/],
    [{ userTimeoutMs: '5' }, TypeError, 'ERR_INVALID_ARG_TYPE', /"options\.userTimeoutMs"/],
    [{ reuse: 'strict' }, TypeError, 'ERR_INVALID_ARG_TYPE', /"options\.reuse"/],
    [{ reuse: null }, TypeError, 'ERR_INVALID_ARG_TYPE', /"options\.reuse"/],
    [{ reuse: { maxSilentMs: -1 } }, RangeError, 'ERR_OUT_OF_RANGE', /"options\.reuse\.maxSilentMs"/],
    [{ reuse: { maxSilentMs: 1.5 } }, RangeError, 'ERR_OUT_OF_RANGE', /"options\.reuse\.maxSilentMs"/],
    [{ reuse: { maxSilentMs: '100' } }, TypeError, 'ERR_INVALID_ARG_TYPE', /"options\.reuse\.maxSilentMs"/],
    [{ reuse: { allowStalled: 1 } }, TypeError, 'ERR_INVALID_ARG_TYPE', /"options\.reuse\.allowStalled"/],
  ])('%o: %s %s', (options, kind, code, message) => {
    for (const Ctor of [Agent, HttpsAgent]) {
      let caught: unknown;
      try {
        new Ctor(options as never);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(kind);
      expect(caught).toMatchObject({ code });
      expect((caught as Error).message).toMatch(message);
    }
  });

  it('reads only options the caller set on the object itself', () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.tcpKeepAlive = 'yes';
    proto.userTimeoutMs = -1;
    proto.keepAlive = false;
    proto.reuse = 'strict';
    try {
      for (const Ctor of [Agent, HttpsAgent]) {
        const agent = new Ctor({});
        // keepAlive defaults to true; the inherited bad tuning is not read.
        expect((agent as unknown as { keepAlive: boolean }).keepAlive).toBe(true);
        agent.destroy();
      }
    } finally {
      delete proto.tcpKeepAlive;
      delete proto.userTimeoutMs;
      delete proto.keepAlive;
      delete proto.reuse;
    }
  });

  it.runIf(!supported)('without the addon, asking for tuning is ERR_SOCKSTATE_UNSUPPORTED', () => {
    expect(() => new Agent({ userTimeoutMs: 1000 })).toThrow(expect.objectContaining({ code: 'ERR_SOCKSTATE_UNSUPPORTED' }));
  });
});

describe('methods called on something that is not a sockstate agent', () => {
  it('throw ERR_INVALID_ARG_TYPE naming `this`', () => {
    const stock = new http.Agent();
    try {
      for (const Ctor of [Agent, HttpsAgent]) {
        const getter = Object.getOwnPropertyDescriptor(Ctor.prototype, 'staleSocketsDestroyed')!.get!;
        expect(() => getter.call(stock)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"this"') }));
      }
    } finally {
      stock.destroy();
    }
  });
});
