import { once } from 'node:events';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionState, supported, takeSocketError, tcpInfo } from '../src/index';
import { busyWait } from './helpers/sockets';
import { makeCertificate } from './helpers/tls';

describe('TLS sockets', () => {
  let server: tls.Server;
  let port = 0;
  const accepted: tls.TLSSocket[] = [];

  beforeAll(async () => {
    const { key, cert } = makeCertificate();
    server = tls.createServer({ key, cert }, (s) => {
      s.on('error', () => {});
      accepted.push(s);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => {
    accepted.forEach((s) => s.destroy());
    server.close();
  });

  async function connect(): Promise<tls.TLSSocket> {
    const n = accepted.length;
    const client = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    client.on('error', () => {});
    await once(client, 'secureConnect');
    while (accepted.length === n) await new Promise((r) => setTimeout(r, 5));
    return client;
  }

  it('reaches the TCP fd underneath: open / ESTABLISHED, tcpInfo works', async () => {
    const client = await connect();
    try {
      if (supported) {
        expect(connectionState(client)).toMatchObject({
          status: 'open',
          tcpState: 'ESTABLISHED',
          pendingError: false,
          source: 'kernel',
        });
        expect(tcpInfo(client).state).toBe('ESTABLISHED');
      } else {
        expect(connectionState(client)).toMatchObject({ status: 'open', source: 'flags' });
        expect(() => tcpInfo(client)).toThrow(expect.objectContaining({ code: 'ERR_SOCKSTATE_UNSUPPORTED' }));
      }
    } finally {
      client.destroy();
    }
  });

  it('the server side goes away: peerClosed before Node has read the FIN', async () => {
    const client = await connect();
    try {
      // destroy() closes the fd at once: the FIN is on its way when it returns.
      accepted.at(-1)!.destroy();
      if (supported) {
        const deadline = Date.now() + 3000;
        let state = connectionState(client);
        while (state.tcpState !== 'CLOSE_WAIT' && Date.now() < deadline) state = connectionState(client);
        expect(state).toMatchObject({ status: 'peerClosed', tcpState: 'CLOSE_WAIT', readClosed: true });
      } else {
        busyWait(100);
        expect(connectionState(client)).toMatchObject({ status: 'open', source: 'flags' });
      }
    } finally {
      client.destroy();
    }
  });

  it('a TLS socket over a JS stream has no fd, and says so', () => {
    const duplex = new Duplex({
      read() {},
      write(_chunk, _enc, cb) {
        cb();
      },
    });
    const client = tls.connect({ socket: duplex, rejectUnauthorized: false });
    client.on('error', () => {});
    try {
      expect(connectionState(client)).toMatchObject({ status: 'open', tcpState: null, source: 'flags' });
      const code = supported ? 'ERR_SOCKSTATE_NO_FD' : 'ERR_SOCKSTATE_UNSUPPORTED';
      expect(() => tcpInfo(client)).toThrow(expect.objectContaining({ code }));
      expect(() => takeSocketError(client)).toThrow(expect.objectContaining({ code }));
      if (supported) {
        expect(() => tcpInfo(client)).toThrow(/TLS socket over a JS stream/);
      }
    } finally {
      client.destroy();
      duplex.destroy();
    }
  });
});
