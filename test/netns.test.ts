import { once } from 'node:events';
import * as net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ConnectionState, connectionState, tcpInfo } from '../src/index';
import { setKeepAlive, setUserTimeout } from '../src/probe/sockopt';
import { createNetns, isRoot, type Netns, type NetnsServer } from './helpers/netns';
import { busyWait, waitFor } from './helpers/sockets';

// Dead peers, for real: a server in a network namespace, a veth pair to it,
// and the link cut while the connection is up. Needs root for `ip netns`.

if (!isRoot) {
  it.skip('needs root to create a network namespace (ip netns): the dead-peer tests are skipped', () => {});
}

/**
 * Blocks the event loop (Node cannot read the socket's error meanwhile)
 * and probes until `done` holds or `timeoutMs` passes; returns the last
 * state. What the kernel says before Node consumes it.
 */
function probeBlocked(socket: net.Socket, done: (s: ConnectionState) => boolean, timeoutMs: number): ConnectionState {
  const deadline = Date.now() + timeoutMs;
  let state = connectionState(socket);
  while (!done(state) && Date.now() < deadline) {
    busyWait(2);
    state = connectionState(socket);
  }
  return state;
}

describe.runIf(isRoot)('with the link cut in a network namespace', () => {
  let ns: Netns;
  let server: NetnsServer;
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    ns = createNetns();
    server = await ns.startServer();
  });
  afterEach(() => {
    // An RST into the void: no orphan keeps retransmitting after the test.
    for (const s of sockets.splice(0)) if (!s.destroyed) s.resetAndDestroy();
  });
  afterAll(() => {
    ns?.destroy();
  });

  async function connect(options: Partial<net.TcpNetConnectOpts> = {}): Promise<{ socket: net.Socket; error: Promise<Error> }> {
    const socket = net.connect({ host: server.host, port: server.port, ...options });
    sockets.push(socket);
    const error = once(socket, 'error').then(([err]) => err as Error);
    await once(socket, 'connect');
    return { socket, error };
  }

  it('before the cut, data is acknowledged (the baseline)', async () => {
    const { socket } = await connect();
    socket.write('x'.repeat(100));
    await waitFor(() => connectionState(socket).unackedBytes === 0 && tcpInfo(socket).bytesAcked === 101n, 5000, 'the ACK');
    expect(connectionState(socket)).toMatchObject({ status: 'open', stalled: false });
  });

  it('user timeout: stalled while retransmitting, then errored, and Node still gets ETIMEDOUT', async () => {
    const { socket, error } = await connect();
    setUserTimeout(socket, 1500);
    ns.cut();
    try {
      socket.write(Buffer.alloc(1000, 1));
      await waitFor(() => connectionState(socket).stalled, 5000, 'the first retransmission');
      const stalled = connectionState(socket);
      expect(stalled).toMatchObject({
        status: 'open',
        tcpState: 'ESTABLISHED',
        stalled: true,
        pendingError: false,
        unsentBytes: 0,
        unackedBytes: 1000,
      });
      expect(tcpInfo(socket).retransmits).toBeGreaterThan(0);

      const after = probeBlocked(socket, (s) => s.tcpState !== 'ESTABLISHED', 5000);
      expect(after).toMatchObject({ status: 'errored', tcpState: 'CLOSE', pendingError: true, stalled: true });
      // Probing took nothing: Node reports the timeout itself.
      expect(await error).toMatchObject({ code: 'ETIMEDOUT' });
      expect(connectionState(socket)).toMatchObject({ status: 'closed', source: 'flags' });
    } finally {
      ns.restore();
    }
  });

  it('user timeout with a megabyte queued: errored with 0 unsent and 0 unacked, the queue being gone', async () => {
    const { socket, error } = await connect();
    setUserTimeout(socket, 1000);
    ns.cut();
    try {
      socket.write(Buffer.alloc(1 << 20, 2));
      await waitFor(() => connectionState(socket).stalled, 5000, 'the first retransmission');
      const stalled = connectionState(socket);
      expect(stalled.unsentBytes).toBeGreaterThan(0);
      expect(stalled.unackedBytes).toBeGreaterThan(0);
      const after = probeBlocked(socket, (s) => s.tcpState !== 'ESTABLISHED', 5000);
      expect(after).toMatchObject({ status: 'errored', tcpState: 'CLOSE', unsentBytes: 0, unackedBytes: 0 });
      // The kernel's own counter (write_seq - snd_nxt) outlives the purged queue.
      expect(tcpInfo(socket).notsentBytes).toBeGreaterThan(0);
      expect(await error).toMatchObject({ code: 'ETIMEDOUT' });
    } finally {
      ns.restore();
    }
  });

  it('keepalive: probes counted on an idle connection, then errored with ETIMEDOUT', async () => {
    const { socket, error } = await connect();
    setKeepAlive(socket, { idleMs: 1000, intervalMs: 1000, count: 2 });
    ns.cut();
    try {
      await waitFor(() => tcpInfo(socket).probes > 0, 5000, 'the first keepalive probe');
      expect(connectionState(socket)).toMatchObject({
        status: 'open',
        tcpState: 'ESTABLISHED',
        stalled: true,
        unackedBytes: 0,
        pendingError: false,
      });
      expect(tcpInfo(socket).retransmits).toBe(0);

      const after = probeBlocked(socket, (s) => s.tcpState !== 'ESTABLISHED', 5000);
      expect(after).toMatchObject({ status: 'errored', tcpState: 'CLOSE', pendingError: true, stalled: true });
      expect(tcpInfo(socket).probes).toBe(2);
      expect(await error).toMatchObject({ code: 'ETIMEDOUT' });
    } finally {
      ns.restore();
    }
  });

  it('LAST_ACK: the peer closed, our FIN unacknowledged is closing, and the FIN is not counted', async () => {
    // Node destroys a socket once both directions are done, so it must not
    // read the peer's FIN: with `onread`, pause() really stops reading.
    const { socket } = await connect({
      allowHalfOpen: true,
      onread: { buffer: Buffer.alloc(1024), callback: () => true },
    });
    socket.pause();
    setUserTimeout(socket, 10_000);
    server.child.stdin!.write('end\n');
    await waitFor(() => connectionState(socket).tcpState === 'CLOSE_WAIT', 5000, 'CLOSE_WAIT');
    ns.cut();
    try {
      socket.end();
      await waitFor(() => connectionState(socket).tcpState === 'LAST_ACK', 5000, 'LAST_ACK');
      expect(connectionState(socket)).toMatchObject({
        status: 'closing',
        tcpState: 'LAST_ACK',
        readClosed: true,
        pendingError: false,
        unsentBytes: 0,
        unackedBytes: 0,
      });
    } finally {
      ns.restore();
    }
  });

  it('FIN_WAIT1: our FIN unacknowledged is localClosed, and the FIN is not counted', async () => {
    const idle = await connect({ allowHalfOpen: true });
    const busy = await connect({ allowHalfOpen: true });
    for (const { socket } of [idle, busy]) setUserTimeout(socket, 10_000);
    ns.cut();
    try {
      idle.socket.end();
      busy.socket.write(Buffer.alloc(1000, 1));
      busy.socket.end();
      await waitFor(
        () => connectionState(idle.socket).tcpState === 'FIN_WAIT1' && connectionState(busy.socket).tcpState === 'FIN_WAIT1',
        5000,
        'FIN_WAIT1',
      );
      expect(connectionState(idle.socket)).toMatchObject({
        status: 'localClosed',
        tcpState: 'FIN_WAIT1',
        unsentBytes: 0,
        unackedBytes: 0,
        pendingError: false,
      });
      expect(connectionState(busy.socket)).toMatchObject({
        status: 'localClosed',
        tcpState: 'FIN_WAIT1',
        unsentBytes: 0,
        unackedBytes: 1000,
      });
    } finally {
      ns.restore();
    }
  });
});
