import { type ChildProcess, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionState } from '../src/index';
import { native } from '../src/native';
import { checkReusable, isReusable } from '../src/reuse';
import { perTestCleanup, spawnFixture, waitFor } from './helpers/sockets';

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
