import { once } from 'node:events';
import * as net from 'node:net';
import { describe, expect, it } from 'vitest';
import { connectionState, SockstateError, supported, takeSocketError } from '../src/index';
import { listen, perTestCleanup, spawnFixture } from './helpers/sockets';
import { caught } from './helpers/errors';

const { pair } = perTestCleanup();

describe.runIf(supported)('takeSocketError with the native probe', () => {
  it('returns null on a healthy connection, and on CLOSE_WAIT: SO_ERROR 0 does not mean closed', async () => {
    const { client, peer } = await pair();
    expect(takeSocketError(client)).toBeNull();
    client.pause();
    peer.end();
    const deadline = Date.now() + 3000;
    while (connectionState(client).tcpState !== 'CLOSE_WAIT' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(connectionState(client).status).toBe('peerClosed');
    expect(takeSocketError(client)).toBeNull();
    expect(client.destroyed).toBe(false);
  });

  it('takes a pending ECONNRESET and hands it back: the socket emits that same error', async () => {
    const { client, peer } = await pair();
    const errored = once(client, 'error');
    peer.resetAndDestroy();
    // Synchronously, before Node's loop has read the RST.
    expect(connectionState(client)).toMatchObject({ status: 'reset', pendingError: true });
    const err = takeSocketError(client);
    expect(err).toBeInstanceOf(SockstateError);
    expect(err).toMatchObject({ code: 'ECONNRESET', errno: -104, syscall: 'getsockopt' });
    expect(err!.message).toBe('getsockopt ECONNRESET');
    expect(client.destroyed).toBe(true);
    const [emitted] = await errored;
    expect(emitted).toBe(err);
  });

  it('on a raw fd: reads and clears the error; a second read returns null', async () => {
    const { client, peer } = await pair();
    client.pause();
    const fd = (client as unknown as { _handle: { fd: number } })._handle.fd;
    peer.resetAndDestroy();
    const err = takeSocketError(fd);
    expect(err).toMatchObject({ code: 'ECONNRESET', syscall: 'getsockopt' });
    expect(takeSocketError(fd)).toBeNull();
    // The raw fd was not handed back to anyone: the socket is still there.
    expect(client.destroyed).toBe(false);
    expect(connectionState(client)).toMatchObject({ status: 'closed', tcpState: 'CLOSE', pendingError: false });
  });

  it('refuses a connecting socket, which then still connects normally', async () => {
    const server = net.createServer();
    const port = await listen(server);
    try {
      const client = net.connect({ port, host: '127.0.0.1' });
      expect(caught(() => takeSocketError(client))).toMatchObject({ code: 'ERR_SOCKSTATE_CONNECTING' });
      await once(client, 'connect');
      client.destroy();
    } finally {
      server.close();
    }
  });

  it('refuses a raw fd whose connect is pending (SYN_SENT), leaving its error alone', async () => {
    const { child, firstLine } = await spawnFixture('stalled-listener.js');
    const sockets: net.Socket[] = [];
    try {
      // The listener never accepts: once its backlog is full, SYNs are dropped.
      let stuck: net.Socket | undefined;
      for (let i = 0; i < 8 && !stuck; i++) {
        const s = net.connect({ port: Number(firstLine), host: '127.0.0.1' });
        s.on('error', () => {});
        sockets.push(s);
        await new Promise((r) => setTimeout(r, 30));
        if (s.connecting) stuck = s;
      }
      const fd = (stuck as unknown as { _handle: { fd: number } })._handle.fd;
      expect(connectionState(fd)).toMatchObject({ status: 'connecting', tcpState: 'SYN_SENT' });
      expect(caught(() => takeSocketError(fd))).toMatchObject({ code: 'ERR_SOCKSTATE_CONNECTING' });
      expect(caught(() => takeSocketError(stuck!))).toMatchObject({ code: 'ERR_SOCKSTATE_CONNECTING' });
    } finally {
      sockets.forEach((s) => s.destroy());
      child.kill('SIGKILL');
    }
  });

  it('refuses a raw fd whose connect was refused before Node saw it; Node still reports ECONNREFUSED', async () => {
    const server = net.createServer();
    const port = await listen(server);
    await new Promise<void>((r) => server.close(() => r()));
    const client = net.connect({ port, host: '127.0.0.1' });
    let connected = false;
    client.on('connect', () => {
      connected = true;
    });
    const errored = once(client, 'error');
    const refusal = await new Promise<unknown>((resolve) => {
      process.nextTick(() => {
        const fd = (client as unknown as { _handle: { fd: number } })._handle.fd;
        const deadline = Date.now() + 2000;
        while (connectionState(fd).status !== 'reset' && Date.now() < deadline);
        resolve(caught(() => takeSocketError(fd)));
      });
    });
    expect(refusal).toMatchObject({ code: 'ERR_SOCKSTATE_CONNECTING' });
    const [err] = (await errored) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNREFUSED');
    expect(connected).toBe(false);
  });

  it('a destroyed socket: ERR_SOCKSTATE_NO_FD', async () => {
    const { client } = await pair();
    client.destroy();
    expect(caught(() => takeSocketError(client))).toMatchObject({ code: 'ERR_SOCKSTATE_NO_FD' });
  });

  it('a listening server: null', async () => {
    const server = net.createServer();
    await listen(server);
    try {
      expect(takeSocketError(server)).toBeNull();
    } finally {
      server.close();
    }
  });
});

describe.runIf(!supported)('takeSocketError without the addon', () => {
  it('throws ERR_SOCKSTATE_UNSUPPORTED and leaves the socket alone', async () => {
    const { client } = await pair();
    const err = caught(() => takeSocketError(client));
    expect(err).toBeInstanceOf(SockstateError);
    expect(err).toMatchObject({ code: 'ERR_SOCKSTATE_UNSUPPORTED' });
    expect(client.destroyed).toBe(false);
  });
});
