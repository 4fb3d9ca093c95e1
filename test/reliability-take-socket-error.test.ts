import { once } from 'node:events';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { connectionState, takeSocketError, tcpInfo } from '../src/index';
import { native } from '../src/probe/native';
import { neverEstablished } from '../src/probe/state';
import { createTcpInfoDecoder } from '../src/probe/tcp-info';
import { caught } from './helpers/errors';
import { busyWait, listen, perTestCleanup, sleep, waitFor } from './helpers/sockets';
import { makeCertificate } from './helpers/tls';

const { cleanups, pair } = perTestCleanup();

function fdOf(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

/** Resolves on 'close', whatever came before it ('error' included). */
function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** Everything the socket's owner is told from now on. */
function record(socket: net.Socket): { bytes: number; events: string[] } {
  const log = { bytes: 0, events: [] as string[] };
  socket.on('data', (chunk: Buffer) => (log.bytes += chunk.length));
  // As a socket that does not allow half-open connections would.
  socket.on('end', () => {
    log.events.push('end');
    socket.destroy();
  });
  socket.on('error', (err: NodeJS.ErrnoException) => log.events.push(`error ${err.code}`));
  socket.on('close', () => log.events.push('close'));
  return log;
}

// The peer sends 30 bytes and resets while our loop is busy, so both reach
// the kernel before Node reads anything.
async function resetWithUnread(): Promise<{ client: net.Socket; log: ReturnType<typeof record> }> {
  const { client, peer } = await pair();
  const log = record(client);
  peer.write(Buffer.alloc(30, 0x61));
  await waitFor(() => peer.writableLength === 0, 2000, 'the write');
  busyWait(20);
  peer.resetAndDestroy();
  const deadline = Date.now() + 2000;
  while (connectionState(client).status !== 'reset' && Date.now() < deadline);
  expect(connectionState(client)).toMatchObject({ status: 'reset', tcpState: 'CLOSE', pendingError: true, unreadBytes: 30 });
  return { client, log };
}

describe.runIf(native !== null)('takeSocketError and bytes the owner has not read', () => {
  it('refuses while the kernel holds unread bytes; Node then delivers them exactly as without the call', async () => {
    const control = await resetWithUnread();
    const tested = await resetWithUnread();
    const err = caught(() => takeSocketError(tested.client));
    expect(err).toMatchObject({ name: 'SockstateError', code: 'ERR_SOCKSTATE_UNREAD_DATA' });
    expect(err.message).toContain('30 received bytes are unread');
    // SO_ERROR was not touched: the error is still pending.
    expect(connectionState(tested.client)).toMatchObject({ pendingError: true, unreadBytes: 30 });
    expect(tested.client.destroyed).toBe(false);
    await Promise.all([closed(control.client), closed(tested.client)]);
    expect(tested.log.bytes).toBe(30);
    // Then 'end' (Node 20, 22) or 'error' ECONNRESET (Node 24+, whose libuv
    // reads on to the error): the same with and without the call.
    expect(tested.log).toEqual(control.log);
  });

  it("refuses while Node's own buffer holds unread bytes (a paused socket)", async () => {
    const { client, peer } = await pair();
    client.pause();
    peer.write(Buffer.alloc(30, 0x62));
    await waitFor(() => client.readableLength === 30, 2000, "Node's read into its buffer");
    busyWait(10);
    peer.resetAndDestroy();
    const deadline = Date.now() + 2000;
    while (connectionState(client).status !== 'reset' && Date.now() < deadline);
    expect(connectionState(client)).toMatchObject({ status: 'reset', pendingError: true, unreadBytes: 0 });
    expect(caught(() => takeSocketError(client))).toMatchObject({ code: 'ERR_SOCKSTATE_UNREAD_DATA' });
    expect(connectionState(client).pendingError).toBe(true);
    expect(client.destroyed).toBe(false);
    expect(client.read(30)).toEqual(Buffer.alloc(30, 0x62));
  });

  it('hands the error back once nothing is unread', async () => {
    const { client, peer } = await pair();
    const errored = once(client, 'error');
    peer.resetAndDestroy();
    const deadline = Date.now() + 2000;
    while (connectionState(client).status !== 'reset' && Date.now() < deadline);
    const err = takeSocketError(client);
    expect(err).toMatchObject({ code: 'ECONNRESET' });
    expect(client.destroyed).toBe(true);
    expect((await errored)[0]).toBe(err);
  });

  it('once the error is taken nothing throws: a destroy() that throws gets a warning, and the error is returned', async () => {
    const { client, peer } = await pair();
    peer.resetAndDestroy();
    const deadline = Date.now() + 2000;
    while (connectionState(client).status !== 'reset' && Date.now() < deadline);
    const warnings: (Error & { code?: string })[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    const own = client as net.Socket & { destroy: net.Socket['destroy'] };
    own.destroy = () => {
      throw new Error('destroy refused');
    };
    let err: ReturnType<typeof takeSocketError> = null;
    try {
      err = takeSocketError(client);
    } finally {
      delete (own as { destroy?: unknown }).destroy;
    }
    expect(err).toMatchObject({ code: 'ECONNRESET', syscall: 'getsockopt' });
    await new Promise((r) => setImmediate(r));
    process.removeListener('warning', onWarning);
    expect(warnings.map((w) => w.code)).toEqual(['SOCKSTATE_HAND_BACK_FAILED']);
    expect(warnings[0]!.message).toContain('destroy refused');
    client.destroy();
  });

  it('TLS: refuses while encrypted records are unread in the kernel; the plaintext then reaches the owner', async () => {
    const { key, cert } = makeCertificate();
    // A TLS server over a plain socket, so its end can reset (SO_LINGER 0).
    let raw: net.Socket | undefined;
    const server = net.createServer((socket) => {
      raw = socket;
      socket.on('error', () => {});
      const secure = new tls.TLSSocket(socket, { isServer: true, key, cert });
      secure.on('error', () => {});
      secure.on('secure', () => server.emit('secure', secure));
    });
    cleanups.push(() => server.close());
    const port = await listen(server);
    const accepted = once(server, 'secure') as Promise<[tls.TLSSocket]>;
    const client = tls.connect({ port, host: '127.0.0.1', ca: cert, servername: 'localhost' });
    client.on('error', () => {});
    cleanups.push(() => client.destroy());
    await once(client, 'secureConnect');
    const [peer] = await accepted;
    await sleep(50);
    const log = record(client);
    // Encrypted and written synchronously; our loop stays busy until the reset.
    peer.write(Buffer.alloc(30, 0x63));
    busyWait(20);
    raw!.resetAndDestroy();
    const deadline = Date.now() + 2000;
    while (connectionState(client).status !== 'reset' && Date.now() < deadline);
    const state = connectionState(client);
    expect(state).toMatchObject({ status: 'reset', pendingError: true });
    expect(state.unreadBytes).toBeGreaterThan(30);
    expect(caught(() => takeSocketError(client))).toMatchObject({ code: 'ERR_SOCKSTATE_UNREAD_DATA' });
    expect(client.destroyed).toBe(false);
    await closed(client);
    expect(log.bytes).toBe(30);
  });
});

describe.runIf(native !== null)("takeSocketError on an HTTP/2 session's socket", () => {
  it('refuses before touching SO_ERROR; the session still gets its error', async () => {
    const server = http2.createServer();
    const serverSockets: net.Socket[] = [];
    server.on('connection', (s: net.Socket) => serverSockets.push(s));
    server.on('session', (s) => s.on('error', () => {}));
    cleanups.push(() => server.close());
    const port = await listen(server);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const seen: string[] = [];
    session.on('error', (err: NodeJS.ErrnoException) => seen.push(`error ${err.code}`));
    const closed = new Promise((resolve) => session.once('close', resolve));
    await once(session, 'connect');
    await waitFor(() => serverSockets.length === 1, 2000, 'the server side');
    // Once the settings exchange is read, nothing is left unread when the RST comes.
    await sleep(50);
    const socket = session.socket;
    // The server's end resets while our loop is busy.
    serverSockets[0]!.resetAndDestroy();
    const deadline = Date.now() + 2000;
    while (connectionState(socket).status !== 'reset' && Date.now() < deadline);
    expect(connectionState(socket)).toMatchObject({ status: 'reset', pendingError: true, unreadBytes: 0 });
    expect(caught(() => takeSocketError(socket))).toMatchObject({ code: 'ERR_SOCKSTATE_CANNOT_HAND_BACK' });
    expect(connectionState(socket).pendingError).toBe(true);
    await closed;
    expect(seen).toEqual(['error ECONNRESET']);
  });
});

describe.runIf(native !== null)('takeSocketError on a raw fd: a refused connect vs an accepted connection', () => {
  it("takes an accepted connection's error although it acknowledged no data", async () => {
    const { client, peer } = await pair();
    peer.pause();
    const fd = fdOf(peer);
    client.resetAndDestroy();
    await waitFor(() => connectionState(fd).status === 'reset', 2000, 'the RST');
    const info = tcpInfo(fd);
    expect(info.bytesAcked).toBe(0n);
    expect(neverEstablished(info)).toBe(false);
    expect(takeSocketError(fd)).toMatchObject({ code: 'ECONNRESET', syscall: 'getsockopt' });
    expect(takeSocketError(fd)).toBeNull();
  });

  // The same real tcp_info, decoded as a kernel that fills less of it would.
  async function evidence(): Promise<{ refused: Uint8Array; accepted: Uint8Array; length: number }> {
    const layout = native!.tcpInfoLayout;
    const copy = (fd: number) => {
      const buf = new Uint8Array(layout.bufferSize + 8);
      const n = native!.tcpInfo(fd, buf);
      expect(n).toBeGreaterThanOrEqual(200);
      return { buf, n };
    };
    const server = net.createServer();
    const port = await listen(server);
    await new Promise<void>((r) => server.close(() => r()));
    const refusedSocket = net.connect({ port, host: '127.0.0.1' });
    refusedSocket.on('error', () => {});
    const refused = await new Promise<{ buf: Uint8Array; n: number }>((resolve) => {
      process.nextTick(() => {
        const fd = fdOf(refusedSocket);
        const deadline = Date.now() + 2000;
        while (connectionState(fd).status !== 'reset' && Date.now() < deadline);
        resolve(copy(fd));
      });
    });
    const { client, peer } = await pair();
    client.resetAndDestroy();
    await waitFor(() => connectionState(peer).status === 'reset' || peer.destroyed, 2000, 'the RST');
    expect(peer.destroyed).toBe(false);
    const accepted = copy(fdOf(peer));
    return { refused: refused.buf, accepted: accepted.buf, length: Math.min(refused.n, accepted.n) };
  }

  it('tells them apart by delivered, else segsIn, else options, as the kernel fills them', async () => {
    const { refused, accepted, length } = await evidence();
    const layout = native!.tcpInfoLayout;
    const decoder = createTcpInfoDecoder(layout, native!.tcpStates);
    const decodeAs = (bytes: Uint8Array, n: number) => {
      decoder.buffer.set(bytes.subarray(0, decoder.buffer.length));
      return decoder.decode(n);
    };
    const deliveredEnd = layout.fields.delivered![2];
    const segsInEnd = layout.fields.segsIn![2];
    const cases = [
      { n: length, field: 'delivered' },
      { n: deliveredEnd - 1, field: 'segsIn' }, // a 4.10 … 4.17 kernel: no delivered
      { n: segsInEnd - 4, field: 'options' }, // a 4.1 kernel: no segsIn either
      { n: 104, field: 'options' }, // the oldest layout
    ];
    for (const { n, field } of cases) {
      const r = decodeAs(refused, n);
      const a = decodeAs(accepted, n);
      expect(r.delivered === undefined, `delivered at ${n}`).toBe(field !== 'delivered');
      expect(r.segsIn === undefined, `segsIn at ${n}`).toBe(field === 'options');
      expect(r.bytesAcked ?? 0n).toBe(0n);
      expect(a.bytesAcked ?? 0n).toBe(0n);
      expect(neverEstablished(r), `refused, ${n} bytes`).toBe(true);
      expect(neverEstablished(a), `accepted, ${n} bytes`).toBe(false);
    }
    // What each rule reads, measured on this kernel.
    const r = decodeAs(refused, length);
    const a = decodeAs(accepted, length);
    expect([r.delivered, r.segsIn, r.options]).toEqual([0, 1, 0]);
    expect(a.delivered).toBeGreaterThanOrEqual(1);
    expect(a.segsIn).toBeGreaterThanOrEqual(2);
    expect(a.options).not.toBe(0);
  });
});
