import { type ChildProcess, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as tty from 'node:tty';
import { connectionState, setKeepAlive, tcpInfo } from '../src/index';
import { native } from '../src/probe/native';
import { checkReusable, isReusable, isReusableWith, type ReuseOptions, reusePolicy, reuseReasonWith } from '../src/policy/reuse';
import { createNetns, isRoot, type Netns, type NetnsServer } from './helpers/netns';
import { busyWait, perTestCleanup, spawnFixture, waitFor } from './helpers/sockets';

// Kernel-only: the facts the fast path of isReusable rests on, and TLS.

const { cleanups, pair } = perTestCleanup();
const fdOf = (s: net.Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;

/** Spins, without yielding to the event loop, until the kernel shows `check`. */
function spinUntil(check: () => boolean, what: string): void {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

describe.runIf(native !== null)('what poll(2) says, and why Node\'s flags are needed too', () => {
  const { POLLIN, POLLOUT, POLLRDHUP, POLLERR, POLLHUP } = native?.pollFlags ?? { POLLIN: 0, POLLOUT: 0, POLLRDHUP: 0, POLLERR: 0, POLLHUP: 0 };

  it('after our end(), FIN_WAIT2 polls exactly like an idle connection: only the flags rule it out', async () => {
    const { client } = await pair();
    expect(native!.poll(fdOf(client))).toBe(POLLOUT);
    client.end();
    await waitFor(() => connectionState(client).tcpState === 'FIN_WAIT2', 5000, 'FIN_WAIT2');
    expect(native!.poll(fdOf(client))).toBe(POLLOUT);
    expect(client.writable).toBe(false);
    expect(isReusable(client)).toBe(false);
    expect(checkReusable(client)).toMatchObject({ reusable: false, reason: 'closed', state: { status: 'localClosed' } });
  });

  it('the situations that rule reuse out each set IN, RDHUP, ERR or HUP', async () => {
    const closed = await pair();
    closed.peer.destroy();
    spinUntil(() => connectionState(closed.client).tcpState === 'CLOSE_WAIT', 'CLOSE_WAIT');
    expect(native!.poll(fdOf(closed.client))).toBe(POLLIN | POLLOUT | POLLRDHUP);

    const data = await pair();
    data.client.pause();
    data.peer.write('x');
    expect(native!.poll(fdOf(data.client))).toBe(POLLIN | POLLOUT);

    const reset = await pair();
    reset.client.pause();
    reset.peer.resetAndDestroy();
    spinUntil(() => connectionState(reset.client).status === 'reset', 'the RST');
    expect(native!.poll(fdOf(reset.client))).toBe(POLLIN | POLLOUT | POLLRDHUP | POLLERR | POLLHUP);
    for (const s of [closed.client, data.client, reset.client]) expect(isReusable(s)).toBe(false);
  });

  it('a full send buffer clears POLLOUT: the full probe answers, and agrees', async () => {
    const { client, peer } = await pair();
    peer.pause();
    (peer as unknown as { _handle: { readStop(): void } })._handle.readStop();
    const chunk = Buffer.alloc(1 << 20);
    while ((native!.poll(fdOf(client)) & POLLOUT) !== 0) client.write(chunk);
    expect(native!.poll(fdOf(client))).toBe(0);
    const v = checkReusable(client);
    expect(v).toMatchObject({ reusable: true, reason: 'idle', state: { status: 'open', tcpState: 'ESTABLISHED' } });
    expect(isReusable(client)).toBe(true);
  });

  it('costs: one poll(2) for isReusable without options, and for a plain policy under either unreadData rule', async () => {
    const calls = { poll: 0, probe: 0, tcpInfo: 0 };
    const binding = native! as unknown as Record<'poll' | 'probe' | 'tcpInfo', (...args: unknown[]) => number>;
    const originals = { poll: binding.poll, probe: binding.probe, tcpInfo: binding.tcpInfo };
    for (const name of ['poll', 'probe', 'tcpInfo'] as const) {
      binding[name] = (...args: unknown[]) => {
        calls[name] += 1;
        return originals[name].apply(native, args);
      };
    }
    const counted = (fn: () => unknown): { result: unknown; poll: number; probe: number; tcpInfo: number } => {
      calls.poll = calls.probe = calls.tcpInfo = 0;
      const result = fn();
      return { result, ...calls };
    };
    try {
      const idle = await pair();
      const chatty = await pair();
      chatty.client.pause();
      chatty.peer.write('note');
      spinUntil(() => (native!.poll(fdOf(chatty.client)) & POLLIN) !== 0, 'the bytes');
      const message = reusePolicy(undefined, 'options', 'message');
      expect(counted(() => isReusable(idle.client))).toEqual({ result: true, poll: 1, probe: 0, tcpInfo: 0 });
      expect(counted(() => reuseReasonWith(idle.client, null))).toEqual({ result: 'idle', poll: 1, probe: 0, tcpInfo: 0 });
      expect(counted(() => reuseReasonWith(idle.client, message))).toEqual({ result: 'idle', poll: 1, probe: 0, tcpInfo: 0 });
      expect(counted(() => reuseReasonWith(chatty.client, message))).toEqual({ result: 'idle', poll: 1, probe: 0, tcpInfo: 0 });
      expect(counted(() => isReusableWith(chatty.client, message))).toEqual({ result: true, poll: 1, probe: 0, tcpInfo: 0 });
      // Not reusable: the probe that names the reason follows.
      expect(counted(() => isReusable(chatty.client))).toEqual({ result: false, poll: 1, probe: 0, tcpInfo: 0 });
      expect(counted(() => reuseReasonWith(chatty.client, null))).toMatchObject({ result: 'dataPending', poll: 1, probe: 1 });
      // maxSilentMs takes the peer's silence from the probe's own TCP_INFO
      // read: one probe, no second tcpInfo().
      const silent = counted(() => checkReusable(idle.client, { maxSilentMs: 60_000 }));
      expect(silent).toMatchObject({ poll: 0, probe: 1, tcpInfo: 0 });
      expect(silent.result).toMatchObject({ reusable: true, reason: 'idle' });
      const silentMs = (silent.result as { silentMs: number }).silentMs;
      // The same clocks tcpInfo() reads, a moment later.
      const info = tcpInfo(idle.client);
      expect(silentMs).toBeGreaterThanOrEqual(0);
      expect(silentMs).toBeLessThanOrEqual(Math.min(info.lastDataRecv, info.lastAckRecv));
      expect(counted(() => checkReusable(idle.client, { maxSilentMs: 0 }))).toMatchObject({ probe: 1, tcpInfo: 0 });
    } finally {
      Object.assign(binding, originals);
    }
  });

  it('raw fds take the full probe, with its errors', async () => {
    const { client } = await pair();
    expect(checkReusable(fdOf(client))).toMatchObject({ reusable: true, reason: 'idle', state: { tcpState: 'ESTABLISHED' } });
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => server.close());
    const serverFd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    expect(checkReusable(serverFd)).toMatchObject({ reusable: false, reason: 'closed', state: { status: 'listening' } });
    expect(isReusable(serverFd)).toBe(false);

    const file = fs.openSync(process.execPath, 'r');
    cleanups.push(() => fs.closeSync(file));
    expect(() => isReusable(file)).toThrow(expect.objectContaining({ name: 'SockstateError', code: 'ENOTSOCK', syscall: 'getsockopt' }));
    // Far above any fd this process holds.
    expect(() => isReusable(1_000_000)).toThrow(expect.objectContaining({ code: 'EBADF', errno: -9 }));
  });
});

describe.runIf(native !== null)('TLS: unread records are not a dead peer', () => {
  let dir: string;
  let cert: Buffer;
  let child: ChildProcess;
  let port: number;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-reuse-tls-'));
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', '/CN=localhost', '-keyout', path.join(dir, 'k'), '-out', path.join(dir, 'c')],
      { stdio: 'ignore' },
    );
    cert = fs.readFileSync(path.join(dir, 'c'));
    const started = await spawnFixture('agent-tls-server.js', [path.join(dir, 'k'), path.join(dir, 'c'), '300']);
    child = started.child;
    port = Number(started.firstLine);
  });
  afterAll(() => {
    child.stdin!.end();
    child.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function connect(): Promise<{ socket: tls.TLSSocket; sessions: () => number }> {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost', minVersion: 'TLSv1.3' });
    cleanups.push(() => socket.destroy());
    let sessions = 0;
    socket.on('session', () => (sessions += 1));
    await once(socket, 'secureConnect');
    return { socket, sessions: () => sessions };
  }

  it('a session ticket arriving while the loop is busy reads as dataPending, then idle once Node has read it', async () => {
    const { socket, sessions } = await connect();
    expect(socket.getProtocol()).toBe('TLSv1.3');
    // Node writes the client's Finished after 'secureConnect'; the server
    // answers it with the tickets, which the relay holds back 300 ms. Let
    // the Finished go out, then spin: the tickets land in the kernel while
    // this loop is busy.
    await new Promise((resolve) => setImmediate(resolve));
    await waitFor(() => {
      const s = connectionState(socket);
      return s.unsentBytes === 0 && s.unackedBytes === 0;
    }, 5000, 'the Finished to be sent');
    expect(sessions()).toBe(0);
    spinUntil(() => connectionState(socket).unreadBytes > 0, 'the session tickets');
    expect(sessions()).toBe(0);
    const pending = checkReusable(socket);
    expect(pending).toMatchObject({ reusable: false, reason: 'dataPending', state: { status: 'open', readClosed: false, pendingError: false } });
    expect(isReusable(socket)).toBe(false);
    await waitFor(() => sessions() > 0 && connectionState(socket).unreadBytes === 0, 5000, 'Node to read the tickets');
    expect(checkReusable(socket)).toMatchObject({ reusable: true, reason: 'idle' });
    expect(isReusable(socket)).toBe(true);
    expect(socket.readableLength).toBe(0);
    // And the connection works.
    socket.write('ping\n');
    const [echo] = (await once(socket, 'data')) as [Buffer];
    expect(echo.toString()).toBe('ping\n');
  });

  async function settled(): Promise<tls.TLSSocket> {
    const { socket, sessions } = await connect();
    await waitFor(() => sessions() > 0 && connectionState(socket).unreadBytes === 0, 5000, 'the tickets');
    return socket;
  }

  it('application data from the peer is dataPending, in the kernel and once decrypted', async () => {
    const socket = await settled();
    socket.pause();
    child.stdin!.write('write\n');
    spinUntil(() => connectionState(socket).unreadBytes > 0, 'the record');
    expect(checkReusable(socket)).toMatchObject({ reusable: false, reason: 'dataPending', state: { status: 'open' } });
    await waitFor(() => socket.readableLength > 0, 5000, 'Node to decrypt it');
    expect(checkReusable(socket)).toMatchObject({ reusable: false, reason: 'dataPending' });
    expect(isReusable(socket)).toBe(false);
  });

  it("under unreadData 'message', a record on an open connection is the owner's to read, encrypted or decrypted", async () => {
    const socket = await settled();
    socket.pause();
    child.stdin!.write('write\n');
    spinUntil(() => connectionState(socket).unreadBytes > 0, 'the record');
    const message = { unreadData: 'message' } as const;
    expect(checkReusable(socket, message)).toMatchObject({ reusable: true, reason: 'idle', state: { status: 'open' } });
    expect(isReusable(socket, message)).toBe(true);
    await waitFor(() => socket.readableLength > 0, 5000, 'Node to decrypt it');
    expect(checkReusable(socket, message)).toMatchObject({ reusable: true, reason: 'idle' });
    expect(isReusable(socket, message)).toBe(true);
  });

  it("under unreadData 'message', close_notify in front of the FIN is still a closed connection", async () => {
    const socket = await settled();
    child.stdin!.write('end\n');
    spinUntil(() => connectionState(socket).readClosed, 'the FIN');
    const message = { unreadData: 'message' } as const;
    expect(checkReusable(socket, message)).toMatchObject({ reusable: false, reason: 'closed', state: { status: 'peerClosed' } });
    expect(isReusable(socket, message)).toBe(false);
  });

  it('close_notify in front of the FIN is a closed connection, not dataPending', async () => {
    const socket = await settled();
    child.stdin!.write('end\n');
    spinUntil(() => connectionState(socket).readClosed, 'the FIN');
    const v = checkReusable(socket);
    expect(v.state.unreadBytes).toBeGreaterThan(0);
    expect(v).toMatchObject({ reusable: false, reason: 'closed', state: { status: 'peerClosed', tcpState: 'CLOSE_WAIT' } });
    expect(isReusable(socket)).toBe(false);
  });
});

describe.runIf(native !== null)('things that are not sockets get the same answer from both checks', () => {
  /** Both calls' outcome: the boolean, or the thrown code. */
  function outcomes(target: net.Socket): { is: unknown; check: unknown } {
    const run = (fn: () => unknown): unknown => {
      try {
        return fn();
      } catch (err) {
        return (err as { code?: string }).code;
      }
    };
    return { is: run(() => isReusable(target)), check: run(() => checkReusable(target).reusable) };
  }

  function fifo(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-fifo-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'fifo');
    execFileSync('mkfifo', [file]);
    return file;
  }

  it('a net.Socket over a FIFO, either end or both, is ENOTSOCK for both', () => {
    const file = fifo();
    const { O_RDONLY, O_WRONLY, O_RDWR, O_NONBLOCK } = fs.constants;
    const reader = new net.Socket({ fd: fs.openSync(file, O_RDONLY | O_NONBLOCK), readable: true, writable: false });
    const writer = new net.Socket({ fd: fs.openSync(file, O_WRONLY | O_NONBLOCK), readable: false, writable: true });
    const both = new net.Socket({ fd: fs.openSync(file, O_RDWR | O_NONBLOCK), readable: true, writable: true });
    for (const s of [reader, writer, both]) {
      cleanups.push(() => s.destroy());
      // Node gives a FIFO the same handle class as an AF_UNIX socket.
      expect((s as unknown as { _handle: object })._handle.constructor.name).toBe('Pipe');
      expect(outcomes(s)).toEqual({ is: 'ENOTSOCK', check: 'ENOTSOCK' });
      for (const options of [{}, { maxSilentMs: 1000 }] satisfies ReuseOptions[]) {
        expect(() => isReusable(s, options)).toThrow(expect.objectContaining({ code: 'ENOTSOCK' }));
        expect(() => checkReusable(s, options)).toThrow(expect.objectContaining({ code: 'ENOTSOCK' }));
      }
    }
  });

  it('a terminal (tty.WriteStream and ReadStream on a pty) is ENOTSOCK for both', () => {
    const fd = fs.openSync('/dev/ptmx', 'r+');
    expect(tty.isatty(fd)).toBe(true);
    const out = new tty.WriteStream(fd);
    cleanups.push(() => out.destroy());
    expect(out).toBeInstanceOf(net.Socket);
    expect(outcomes(out)).toEqual({ is: 'ENOTSOCK', check: 'ENOTSOCK' });
    const input = new tty.ReadStream(fs.openSync('/dev/ptmx', 'r+'));
    cleanups.push(() => input.destroy());
    expect(outcomes(input)).toEqual({ is: 'ENOTSOCK', check: 'ENOTSOCK' });
  });

  it("an anonymous pipe (a child's stdin fed by a shell pipe) is ENOTSOCK for both", () => {
    // The child, running the built package (npm test builds lib/ first),
    // reports what both calls did on its own process.stdin.
    const script =
      "const { isReusable, checkReusable } = require(process.argv[1]);" +
      "const run = (f) => { try { return f(); } catch (e) { return e.code; } };" +
      "const s = process.stdin;" +
      "console.log(JSON.stringify({ fifo: require('fs').fstatSync(0).isFIFO(), handle: s._handle.constructor.name," +
      " is: run(() => isReusable(s)), check: run(() => checkReusable(s).reusable) })); process.exit(0);";
    const lib = path.join(__dirname, '..', 'lib', 'index.js');
    const out = execFileSync('sh', ['-c', `true | "${process.execPath}" -e "$0" "$1"`, script, lib], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ fifo: true, handle: 'Pipe', is: 'ENOTSOCK', check: 'ENOTSOCK' });
  });
});

describe.runIf(native !== null)('ReuseOptions: silence by the kernel clocks, and stalled connections', () => {
  /** checkReusable with options, also asserting that isReusable agrees. */
  function verdictWith(target: net.Socket, options: ReuseOptions) {
    const v = checkReusable(target, options);
    expect(isReusable(target, options)).toBe(v.reusable);
    return v;
  }

  it('a peer silent longer than maxSilentMs is silent, measured by the kernel while the loop is busy', async () => {
    const { client, peer } = await pair();
    // No timer can fire during this: only the kernel's clocks see the time pass.
    busyWait(400);
    const v = verdictWith(client, { maxSilentMs: 300 });
    expect(v).toMatchObject({ reusable: false, reason: 'silent', state: { status: 'open', tcpState: 'ESTABLISHED' } });
    expect(v.silentMs).toBeGreaterThanOrEqual(390);
    // The same connection under a looser bound is idle, and says how silent it is.
    const loose = verdictWith(client, { maxSilentMs: 60_000 });
    expect(loose).toMatchObject({ reusable: true, reason: 'idle' });
    expect(loose.silentMs).toBeGreaterThanOrEqual(390);
    // Without maxSilentMs nothing is measured, and the plain check ignores silence.
    expect(verdictWith(client, {})).toMatchObject({ reusable: true, reason: 'idle' });
    expect(checkReusable(client, {}).silentMs).toBeUndefined();
    expect(checkReusable(client)).toMatchObject({ reusable: true, reason: 'idle' });
    expect(isReusable(client)).toBe(true);

    // Data from the peer, once read, ends the silence.
    peer.write('x');
    await once(client, 'data');
    const after = verdictWith(client, { maxSilentMs: 300 });
    expect(after).toMatchObject({ reusable: true, reason: 'idle' });
    expect(after.silentMs).toBeLessThan(300);
  });

  it('a keepalive ACK is a sign of life: it resets the silence, though no data came', async () => {
    const alive = await pair();
    const quiet = await pair();
    // Probe after 1 s of silence, every 1 s: the peer's kernel ACKs each probe.
    setKeepAlive(alive.client, { idleMs: 1000, intervalMs: 1000, count: 5 });
    await waitFor(() => tcpInfo(quiet.client).lastDataRecv > 2600, 10_000, '2.6 s of silence');
    const info = tcpInfo(alive.client);
    // No data for as long as the quiet pair, but an ACK within the last probe interval.
    expect(info.lastDataRecv).toBeGreaterThan(2500);
    expect(info.lastAckRecv).toBeLessThan(1600);
    const options = { maxSilentMs: 2000 };
    const v = verdictWith(alive.client, options);
    expect(v).toMatchObject({ reusable: true, reason: 'idle' });
    expect(v.silentMs).toBeLessThan(1600);
    const q = verdictWith(quiet.client, options);
    expect(q).toMatchObject({ reusable: false, reason: 'silent', state: { status: 'open' } });
    expect(q.silentMs).toBeGreaterThan(2600);
  });

  it('a peer that stopped reading leaves bytes unsent: stalled under options, unless allowStalled', async () => {
    const { client, peer } = await pair();
    peer.pause();
    (peer as unknown as { _handle: { readStop(): void } })._handle.readStop();
    const chunk = Buffer.alloc(1 << 20);
    // Fill both kernels' buffers: the peer's receive queue, then ours.
    const POLLOUT = native!.pollFlags.POLLOUT;
    while ((native!.poll(fdOf(client)) & POLLOUT) !== 0) client.write(chunk);
    await waitFor(() => connectionState(client).unsentBytes > 0, 5000, 'unsent bytes');
    const state = connectionState(client);
    expect(state.unsentBytes).toBeGreaterThan(0);
    expect(state.status).toBe('open');
    expect(verdictWith(client, {})).toMatchObject({ reusable: false, reason: 'stalled', state: { status: 'open' } });
    expect(verdictWith(client, { maxSilentMs: 60_000 })).toMatchObject({ reusable: false, reason: 'stalled' });
    expect(verdictWith(client, { allowStalled: true })).toMatchObject({ reusable: true, reason: 'idle' });
    // The plain check does not look at the send side (documented).
    expect(checkReusable(client)).toMatchObject({ reusable: true, reason: 'idle' });
    expect(isReusable(client)).toBe(true);
  });

  it('an AF_UNIX connection has no kernel clocks or retransmissions: options leave its verdict plain', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-reuse-unix-'));
    const server = net.createServer();
    server.listen(path.join(dir, 's'));
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    const client = net.connect({ path: path.join(dir, 's') });
    await once(client, 'connect');
    const [peer] = await accepted;
    cleanups.push(() => {
      client.destroy();
      peer.destroy();
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    busyWait(50);
    const v = verdictWith(client, { maxSilentMs: 1 });
    expect(v).toMatchObject({ reusable: true, reason: 'idle', state: { tcpState: null, source: 'kernel' } });
    expect(v.silentMs).toBeUndefined();
    peer.destroy();
    spinUntil(() => connectionState(client).readClosed, 'the close');
    expect(verdictWith(client, { maxSilentMs: 1 })).toMatchObject({ reusable: false, reason: 'closed' });
  });

  it('a closed or chatty connection keeps its plain reason under options', async () => {
    const closed = await pair();
    closed.peer.destroy();
    spinUntil(() => connectionState(closed.client).tcpState === 'CLOSE_WAIT', 'CLOSE_WAIT');
    busyWait(20);
    expect(verdictWith(closed.client, { maxSilentMs: 1 })).toMatchObject({ reusable: false, reason: 'closed' });
    const chatty = await pair();
    chatty.client.pause();
    chatty.peer.write('bye');
    spinUntil(() => connectionState(chatty.client).unreadBytes === 3, 'the bytes');
    expect(verdictWith(chatty.client, { maxSilentMs: 1 })).toMatchObject({ reusable: false, reason: 'dataPending' });
  });
});

describe.runIf(native !== null && isRoot)('ReuseOptions on a link cut in a network namespace (a silent drop, as a NAT gateway does)', () => {
  let ns: Netns;
  let server: NetnsServer;
  const sockets: net.Socket[] = [];
  beforeAll(async () => {
    ns = createNetns();
    server = await ns.startServer();
  });
  afterEach(() => {
    ns.restore();
    // An RST into the void: nothing keeps retransmitting after the test.
    for (const s of sockets.splice(0)) if (!s.destroyed) s.resetAndDestroy();
  });
  afterAll(() => {
    ns?.destroy();
  });

  async function connect(): Promise<net.Socket> {
    const socket = net.connect({ host: server.host, port: server.port });
    socket.on('error', () => {});
    sockets.push(socket);
    await once(socket, 'connect');
    return socket;
  }

  it('a request the kernel is retransmitting: idle to the plain check, stalled under options', async () => {
    const socket = await connect();
    ns.cut();
    socket.write('x'.repeat(100));
    await waitFor(() => tcpInfo(socket).retransmits > 0, 10_000, 'a retransmission');
    expect(connectionState(socket)).toMatchObject({ status: 'open', stalled: true, unackedBytes: 100 });
    // What the plain check cannot see (documented): poll says POLLOUT.
    expect(checkReusable(socket)).toMatchObject({ reusable: true, reason: 'idle' });
    expect(isReusable(socket)).toBe(true);
    for (const options of [{}, { maxSilentMs: 60_000 }] satisfies ReuseOptions[]) {
      expect(checkReusable(socket, options)).toMatchObject({ reusable: false, reason: 'stalled', state: { status: 'open' } });
      expect(isReusable(socket, options)).toBe(false);
    }
    expect(checkReusable(socket, { allowStalled: true })).toMatchObject({ reusable: true, reason: 'idle' });
  });

  it('keepalive probes into a silent drop: unanswered probes are stalled, and the silence grows though probes go out', async () => {
    const socket = await connect();
    setKeepAlive(socket, { idleMs: 1000, intervalMs: 1000, count: 9 });
    ns.cut();
    await waitFor(() => tcpInfo(socket).probes > 0, 10_000, 'an unanswered keepalive probe');
    const info = tcpInfo(socket);
    expect(Math.min(info.lastDataRecv, info.lastAckRecv)).toBeGreaterThan(1000);
    expect(checkReusable(socket)).toMatchObject({ reusable: true, reason: 'idle', state: { status: 'open' } });
    expect(checkReusable(socket, {})).toMatchObject({ reusable: false, reason: 'stalled' });
    const silent = checkReusable(socket, { allowStalled: true, maxSilentMs: 1000 });
    expect(silent).toMatchObject({ reusable: false, reason: 'silent', state: { status: 'open', stalled: true } });
    expect(silent.silentMs).toBeGreaterThan(1000);
    expect(isReusable(socket, { allowStalled: true, maxSilentMs: 1000 })).toBe(false);
  });
});
