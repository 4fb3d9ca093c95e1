import { once } from 'node:events';
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, getKeepAlive, getUserTimeout, HttpsAgent, supported } from '../src/index';
import { listen } from './helpers/sockets';
import { makeCertificate } from './helpers/tls';

// Node's agent calls socket.setKeepAlive(true, keepAliveMsecs) each time a
// socket returns to its pool, which resets TCP keepalive tuning; the
// agents' tcpKeepAlive option re-applies it there.

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

  it("Node's stock agent resets keepalive when a socket returns to the pool", async () => {
    const agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 1000 });
    try {
      await get(agent, port);
      expect(getKeepAlive(freeSocket(agent))).toEqual({ enabled: true, idleMs: 1000, intervalMs: 1000, count: 10 });
    } finally {
      agent.destroy();
    }
  });

  it('tcpKeepAlive and userTimeoutMs hold on a pooled socket, after every reuse', async () => {
    const agent = new Agent({ tcpKeepAlive: TUNING, userTimeoutMs: 7000 });
    try {
      await get(agent, port);
      const socket = freeSocket(agent);
      expect(getKeepAlive(socket)).toEqual({ enabled: true, ...TUNING });
      expect(getUserTimeout(socket)).toBe(7000);
      await get(agent, port);
      expect(freeSocket(agent)).toBe(socket);
      expect(getKeepAlive(socket)).toEqual({ enabled: true, ...TUNING });
    } finally {
      agent.destroy();
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

  it.runIf(!supported)('without the addon, asking for tuning is ERR_SOCKSTATE_UNSUPPORTED', () => {
    expect(() => new Agent({ userTimeoutMs: 1000 })).toThrow(expect.objectContaining({ code: 'ERR_SOCKSTATE_UNSUPPORTED' }));
  });
});
