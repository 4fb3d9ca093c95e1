import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ConnectionState, connectionState, supported } from '../src/index';
import { startPeer, type PeerProcess } from './helpers/peer';
import { busyWait, listen, perTestCleanup, spawnFixture, waitFor } from './helpers/sockets';

// Each situation of the semantics table, on real loopback sockets. Our end
// is paused where it matters, so Node has not read the peer's FIN or RST
// yet: the kernel already knows, Node's flags do not. Expectations only the
// kernel can meet branch on `supported`, with an assertion either way.

const { cleanups, pair } = perTestCleanup();
async function peerProcess(unixPath?: string): Promise<PeerProcess> {
  const p = await startPeer(unixPath);
  cleanups.push(() => p.kill());
  return p;
}

const OPEN_FLAGS: Partial<ConnectionState> = { status: 'open', tcpState: null, source: 'flags' };

let currentPeer: PeerProcess | null = null;

/** Connects to a peer process (allowHalfOpen) and waits until it has accepted. */
async function connectToPeer(peer: PeerProcess): Promise<{ client: net.Socket }> {
  currentPeer = peer;
  const options = /^\d+$/.test(peer.address)
    ? { port: Number(peer.address), host: '127.0.0.1', allowHalfOpen: true }
    : { path: peer.address, allowHalfOpen: true };
  const client = net.connect(options);
  cleanups.push(() => client.destroy());
  client.on('error', () => {});
  await Promise.all([once(client, 'connect'), peer.accepted()]);
  return { client };
}

/** Sends a command to the current peer without waiting on our event loop. */
function peerCommand(line: string): void {
  currentPeer!.child.stdin!.write(`${line}\n`);
}

/**
 * Blocks the event loop, as a busy process would, so Node cannot read what
 * the peer did: with the addon, until the kernel shows `until` (3 s at
 * most); without it, for 200 ms, after which Node's flags are unchanged.
 */
function observeBlocked(target: net.Socket, until: (s: ConnectionState) => boolean): ConnectionState {
  if (!supported) {
    busyWait(200);
    return connectionState(target);
  }
  const deadline = Date.now() + 3000;
  let state = connectionState(target);
  while (!until(state) && Date.now() < deadline) state = connectionState(target);
  return state;
}

describe('connectionState on TCP', () => {
  it('idle established connection: open / ESTABLISHED', async () => {
    const { client } = await pair();
    const state = connectionState(client);
    if (supported) {
      expect(state).toEqual({
        status: 'open',
        tcpState: 'ESTABLISHED',
        pendingError: false,
        readClosed: false,
        unreadBytes: 0,
        unsentBytes: 0,
        unackedBytes: 0,
        stalled: false,
        source: 'kernel',
      });
    } else {
      expect(state).toMatchObject({ ...OPEN_FLAGS, pendingError: false, readClosed: false, unreadBytes: 0 });
    }
  });

  it('also over IPv6 loopback', async () => {
    const { client } = await pair('::1');
    expect(connectionState(client)).toMatchObject(
      supported ? { status: 'open', tcpState: 'ESTABLISHED', source: 'kernel' } : OPEN_FLAGS,
    );
  });

  it('peer FIN: peerClosed / CLOSE_WAIT, and Node still emits end', async () => {
    const { client } = await connectToPeer(await peerProcess());
    peerCommand('end');
    const state = observeBlocked(client, (s) => s.tcpState === 'CLOSE_WAIT');
    if (supported) {
      expect(state).toEqual({
        status: 'peerClosed',
        tcpState: 'CLOSE_WAIT',
        pendingError: false,
        readClosed: true,
        unreadBytes: 0,
        unsentBytes: 0,
        unackedBytes: 0,
        stalled: false,
        source: 'kernel',
      });
    } else {
      expect(state).toMatchObject(OPEN_FLAGS);
    }
    await once(client, 'end');
    expect(connectionState(client).status).toBe('peerClosed');
  });

  it('peer in a child process that exits: peerClosed / CLOSE_WAIT', async () => {
    const peer = await peerProcess();
    const { client } = await connectToPeer(peer);
    peerCommand('exit');
    const state = observeBlocked(client, (s) => s.tcpState === 'CLOSE_WAIT');
    if (supported) {
      expect(state).toMatchObject({ status: 'peerClosed', tcpState: 'CLOSE_WAIT', readClosed: true, pendingError: false });
    } else {
      expect(state).toMatchObject(OPEN_FLAGS);
    }
    expect(await peer.exited()).toBe(0);
  });

  it('peer RST (resetAndDestroy): reset / CLOSE, and Node still emits ECONNRESET', async () => {
    const { client, peer } = await pair();
    const errored = once(client, 'error');
    // Sent synchronously: on loopback our end is CLOSE before this returns.
    peer.resetAndDestroy();
    const state = observeBlocked(client, (s) => s.tcpState === 'CLOSE');
    if (supported) {
      expect(state).toEqual({
        status: 'reset',
        tcpState: 'CLOSE',
        pendingError: true,
        readClosed: true,
        unreadBytes: 0,
        unsentBytes: 0,
        unackedBytes: 0,
        stalled: false,
        source: 'kernel',
      });
      // Probing again changes nothing: the error is still pending.
      expect(connectionState(client).pendingError).toBe(true);
    } else {
      expect(state).toMatchObject(OPEN_FLAGS);
    }
    const [err] = (await errored) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
    expect(connectionState(client)).toMatchObject({ status: 'closed', tcpState: null, source: 'flags' });
  });

  it('we write after the peer closed and it answers RST: reset / CLOSE, which Node learns only on its next write', async () => {
    const peer = await peerProcess();
    const { client } = await connectToPeer(peer);
    const errored = once(client, 'error');
    const ended = once(client, 'end');
    peerCommand('exit');
    expect(await peer.exited()).toBe(0);
    await ended;
    // The write reaches a closed socket: the peer's kernel answers RST.
    client.write('x');
    const state = observeBlocked(client, (s) => s.tcpState === 'CLOSE');
    await new Promise((r) => setTimeout(r, 50));
    if (supported) {
      expect(state).toMatchObject({ status: 'reset', tcpState: 'CLOSE', pendingError: true, readClosed: true });
      // Node is not reading (it has seen the end) and has nothing to write:
      // the EPIPE waits in the kernel, and Node's flags still say half-open.
      expect(connectionState(client)).toMatchObject({ status: 'reset', pendingError: true });
    } else {
      expect(state).toMatchObject({ status: 'peerClosed', source: 'flags' });
    }
    expect(client.readyState).toBe('writeOnly');
    client.write('y');
    const [err] = (await errored) as [NodeJS.ErrnoException];
    expect(err.code).toBe('EPIPE');
  });

  it('RST with unread data still held: reset with unreadBytes; Node reads the data, then an end (Node 20, 22) or the error (24+)', async () => {
    const { client } = await connectToPeer(await peerProcess());
    const chunks: Buffer[] = [];
    const errors: string[] = [];
    let endEmitted = false;
    client.on('data', (c: Buffer) => chunks.push(c));
    client.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
    client.on('end', () => {
      endEmitted = true;
    });
    // Half-open allowed: after 'end' the socket stays; after 'error' it closes.
    const settled = new Promise((resolve) => {
      client.once('end', resolve);
      client.once('close', resolve);
    });
    peerCommand('write hello');
    peerCommand('reset');
    const state = observeBlocked(client, (s) => s.tcpState === 'CLOSE');
    if (supported) {
      expect(state).toMatchObject({
        status: 'reset',
        tcpState: 'CLOSE',
        pendingError: true,
        readClosed: true,
        unreadBytes: 5,
      });
    } else {
      expect(state).toMatchObject(OPEN_FLAGS);
    }
    // The data first, with or without the probe above. Then Node 20 and 22
    // (whose libuv takes a short read with EPOLLRDHUP as the end) report a
    // clean end; Node 24+ reads again and gets the ECONNRESET.
    await settled;
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(chunks).toString()).toBe('hello');
    const major = Number(process.versions.node.split('.')[0]);
    if (major >= 24) {
      expect(errors).toEqual(['ECONNRESET']);
      expect(endEmitted).toBe(false);
    } else {
      expect(errors).toEqual([]);
      expect(endEmitted).toBe(true);
    }
  });

  it('local end() with allowHalfOpen: localClosed / FIN_WAIT2', async () => {
    const { client } = await pair();
    client.end();
    await waitFor(() => client.writableFinished, 5000, 'finish');
    if (supported) {
      await waitFor(() => connectionState(client).tcpState === 'FIN_WAIT2', 5000, 'FIN_WAIT2');
      expect(connectionState(client)).toMatchObject({
        status: 'localClosed',
        tcpState: 'FIN_WAIT2',
        pendingError: false,
        readClosed: false,
        unsentBytes: 0,
        unackedBytes: 0,
      });
    } else {
      expect(connectionState(client)).toMatchObject({ status: 'localClosed', source: 'flags' });
    }
  });

  it('both sides closed: closed / CLOSE (the fd never shows TIME_WAIT)', async () => {
    const { client } = await connectToPeer(await peerProcess());
    client.end();
    await waitFor(() => client.writableFinished, 5000, 'finish');
    peerCommand('end');
    const state = observeBlocked(client, (s) => s.tcpState === 'CLOSE');
    if (supported) {
      expect(state).toMatchObject({ status: 'closed', tcpState: 'CLOSE', pendingError: false, readClosed: true });
    } else {
      expect(state).toMatchObject({ status: 'localClosed', source: 'flags' });
    }
  });

  it('connecting: connecting (flags before the connect syscall, then SYN_SENT)', async () => {
    const { child, firstLine } = await spawnFixture('stalled-listener.js');
    cleanups.push(() => child.kill('SIGKILL'));
    const port = Number(firstLine);
    // The listener never accepts: once its backlog is full, SYNs are dropped.
    const sockets: net.Socket[] = [];
    cleanups.push(() => sockets.forEach((s) => s.destroy()));
    let stuck: net.Socket | undefined;
    for (let i = 0; i < 8 && !stuck; i++) {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      sockets.push(s);
      expect(connectionState(s)).toMatchObject({ status: 'connecting', tcpState: null, source: 'flags' });
      await new Promise((r) => setTimeout(r, 30));
      if (s.connecting) stuck = s;
    }
    expect(stuck).toBeDefined();
    if (supported) {
      expect(connectionState(stuck!)).toMatchObject({ status: 'connecting', tcpState: 'SYN_SENT', source: 'kernel' });
    } else {
      expect(connectionState(stuck!)).toMatchObject({ status: 'connecting', source: 'flags' });
    }
  });

  it('connection refused: reset / CLOSE, and Node still emits ECONNREFUSED, never connect', async () => {
    const server = net.createServer();
    const port = await listen(server);
    await new Promise<void>((r) => server.close(() => r()));

    const client = net.connect({ port, host: '127.0.0.1' });
    cleanups.push(() => client.destroy());
    let connected = false;
    client.on('connect', () => {
      connected = true;
    });
    const errored = once(client, 'error');
    // The connect syscall is issued on the next tick; the refusal comes back
    // at once on loopback. Look before Node's event loop sees it.
    const seen = await new Promise<ConnectionState>((resolve) => {
      process.nextTick(() => {
        const deadline = Date.now() + (supported ? 2000 : 0);
        let state = connectionState(client);
        while (state.status === 'connecting' && Date.now() < deadline) state = connectionState(client);
        resolve(state);
      });
    });
    if (supported) {
      expect(seen).toMatchObject({ status: 'reset', tcpState: 'CLOSE', pendingError: true, source: 'kernel' });
    } else {
      expect(seen).toMatchObject({ status: 'connecting', source: 'flags' });
    }
    const [err] = (await errored) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNREFUSED');
    expect(connected).toBe(false);
  });

  it('listening server: listening / LISTEN; closed server: closed', async () => {
    const server = net.createServer();
    cleanups.push(() => server.close());
    await listen(server);
    expect(connectionState(server)).toMatchObject(
      supported ? { status: 'listening', tcpState: 'LISTEN', source: 'kernel' } : { status: 'listening', source: 'flags' },
    );
    await new Promise<void>((r) => server.close(() => r()));
    expect(connectionState(server)).toMatchObject({ status: 'closed', tcpState: null, source: 'flags' });
  });

  it('destroyed socket: closed with tcpState null', async () => {
    const { client } = await pair();
    client.destroy();
    expect(connectionState(client)).toEqual({
      status: 'closed',
      tcpState: null,
      pendingError: false,
      readClosed: true,
      unreadBytes: 0,
      unsentBytes: 0,
      unackedBytes: 0,
      stalled: false,
      source: 'flags',
    });
  });

  it('a socket never connected: closed with tcpState null', () => {
    expect(connectionState(new net.Socket())).toMatchObject({ status: 'closed', tcpState: null, source: 'flags' });
  });

  it('fd reused by a new socket after destroy(): the old object reports closed', async () => {
    const a = await pair();
    const oldFd = (a.client as unknown as { _handle: { fd: number } })._handle.fd;
    a.client.destroy();
    // The next socket created takes the lowest free fd: the one just freed.
    const b = await pair();
    const newFd = (b.client as unknown as { _handle: { fd: number } })._handle.fd;
    const fds = [
      (b.peer as unknown as { _handle: { fd: number } })._handle.fd,
      (b.server as unknown as { _handle: { fd: number } })._handle.fd,
      newFd,
    ];
    expect(fds).toContain(oldFd);
    expect(connectionState(a.client)).toMatchObject({ status: 'closed', tcpState: null, source: 'flags' });
    expect(connectionState(b.client).status).toBe('open');
  });
});

describe('connectionState on AF_UNIX stream sockets', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('open, then peerClosed after the peer process exits; tcpState stays null', async () => {
    const peer = await peerProcess(path.join(dir, `peer-${Date.now()}.sock`));
    const { client } = await connectToPeer(peer);
    expect(connectionState(client)).toMatchObject(
      supported ? { status: 'open', tcpState: null, source: 'kernel', pendingError: false } : OPEN_FLAGS,
    );
    peerCommand('exit');
    const state = observeBlocked(client, (s) => s.status !== 'open');
    if (supported) {
      expect(state).toMatchObject({ status: 'peerClosed', tcpState: null, readClosed: true, source: 'kernel' });
    } else {
      expect(state).toMatchObject(OPEN_FLAGS);
    }
    await peer.exited();
  });

  it('the peer closes with our data unread in its buffer: reset, with an error pending', async () => {
    const sockPath = path.join(dir, `unread-${Date.now()}.sock`);
    const server = net.createServer({ pauseOnConnect: true });
    cleanups.push(() => server.close());
    server.listen(sockPath);
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    const client = net.connect({ path: sockPath });
    cleanups.push(() => client.destroy());
    const errored = once(client, 'error');
    await once(client, 'connect');
    const [peer] = await accepted;
    client.write('never read');
    await waitFor(() => client.writableLength === 0, 5000, 'the write');
    // The kernel answers a close with unread data by failing our end.
    peer.destroy();
    const state = observeBlocked(client, (s) => s.status !== 'open');
    if (supported) {
      expect(state).toMatchObject({ status: 'reset', tcpState: null, pendingError: true, source: 'kernel' });
    } else {
      expect(state).toMatchObject(OPEN_FLAGS);
    }
    const [err] = (await errored) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
  });

  it('a listening AF_UNIX server: listening', async () => {
    const server = net.createServer();
    cleanups.push(() => server.close());
    server.listen(path.join(dir, `srv-${Date.now()}.sock`));
    await once(server, 'listening');
    expect(connectionState(server)).toMatchObject({
      status: 'listening',
      tcpState: null,
      source: supported ? 'kernel' : 'flags',
    });
  });
});
