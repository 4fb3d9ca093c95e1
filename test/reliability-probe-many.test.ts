import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { connectionState, probeMany, probeManyAsync } from '../src/index';
import { native } from '../src/probe/native';
import { caught } from './helpers/errors';
import { perTestCleanup, waitFor } from './helpers/sockets';

const { cleanups, pair } = perTestCleanup();

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function arrayBufferBytes(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers;
}

/** A constructed socket whose handle claims `fd`, as a wrapper or a mock might. */
function withFakeFd(fd: unknown): net.Socket {
  const socket = new net.Socket();
  (socket as unknown as { _handle: unknown })._handle = { fd };
  return socket;
}

describe.runIf(native !== null)('probeMany: the same fd rules as connectionState', () => {
  it.each([20.5, 2 ** 32 + 20, 2 ** 31])('a handle fd of %d is out of range for both, never truncated to a probe', (fd) => {
    const fake = withFakeFd(fd);
    const single = caught(() => connectionState(fake));
    const many = caught(() => probeMany([fake]));
    expect(single).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    expect(single.message).toContain('"target._handle.fd"');
    expect(many).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    expect(many.message).toContain('"targets[0]._handle.fd"');
  });

  it('a handle fd of -1 (connect not issued) is answered from flags by both', () => {
    const fake = withFakeFd(-1);
    expect(connectionState(fake).source).toBe('flags');
    expect(probeMany([fake])[0]).toEqual(connectionState(fake));
  });
});

describe.runIf(native !== null)('probeMany is re-entrant', () => {
  it('a getter that calls probeMany does not overwrite the outer call', async () => {
    const open = await pair();
    const closing = await pair();
    closing.peer.end();
    await waitFor(() => connectionState(closing.client).status === 'peerClosed', 2000, 'CLOSE_WAIT');
    const inner: string[] = [];
    const targets: net.Socket[] = [open.client, open.client, closing.client];
    Object.defineProperty(targets, 1, {
      get() {
        // A nested sweep of other sockets, in the middle of the outer one.
        inner.push(...probeMany([closing.client, closing.client, closing.client, open.peer]).map((s) => s.status));
        return closing.client;
      },
    });
    const states = probeMany(targets).map((s) => s.status);
    expect(inner).toEqual(['peerClosed', 'peerClosed', 'peerClosed', 'open']);
    expect(states).toEqual(['open', 'peerClosed', 'peerClosed']);
    // The kept buffers still serve the next sweep correctly.
    expect(probeMany([closing.client, open.client]).map((s) => s.status)).toEqual(['peerClosed', 'open']);
  });
});

describe.runIf(native !== null)('probeMany scratch memory', () => {
  it('checks elements before growing: a huge array of holes throws at once and keeps nothing', () => {
    const before = arrayBufferBytes();
    const err = caught(() => probeMany(new Array(1e7)));
    expect(err).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(err.message).toContain('"targets[0]"');
    expect(arrayBufferBytes() - before).toBeLessThan(1 << 20);
  });

  it('a length beyond 2**24 is a coded RangeError', () => {
    const err = caught(() => probeMany(new Array(2 ** 32 - 1)));
    expect(err).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    expect(err.message).toContain('"targets.length"');
  });

  it('releases the buffers of a one-off huge sweep', async () => {
    const { client } = await pair();
    const before = arrayBufferBytes();
    const states = probeMany(new Array(200_000).fill(client));
    expect(states).toHaveLength(200_000);
    expect(states[199_999]).toEqual(connectionState(client));
    // 200,000 entries need about 11 MB of scratch; none of it stays.
    expect(arrayBufferBytes() - before).toBeLessThan(1 << 20);
  });
});

describe.runIf(native !== null)("AF_UNIX after our own end(): the socket's flags complete the kernel's answer", () => {
  it('reads localClosed, then closed once the peer ends too, from connectionState and probeMany alike', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-unix-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 's');
    const server = net.createServer({ allowHalfOpen: true });
    server.listen(file);
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    // Reading stopped (onread + pause), so Node never sees the peer's end.
    const client = net.connect({ path: file, allowHalfOpen: true, onread: { buffer: Buffer.alloc(64), callback: () => true } });
    await once(client, 'connect');
    client.pause();
    const [peer] = await accepted;
    cleanups.push(() => {
      client.destroy();
      peer.destroy();
      server.close();
    });
    expect(connectionState(client)).toMatchObject({ status: 'open', tcpState: null, source: 'kernel' });
    client.end();
    await waitFor(() => client.writableFinished, 2000, "our end()'s shutdown");
    expect(connectionState(client)).toMatchObject({ status: 'localClosed', tcpState: null, source: 'kernel' });
    expect(probeMany([client])[0]).toEqual(connectionState(client));
    // The peer's side is not affected by our flags: it sees our shutdown.
    expect(connectionState(peer).status).toBe('peerClosed');
    peer.end();
    await waitFor(() => connectionState(client).readClosed, 2000, "the peer's end");
    expect(connectionState(client)).toMatchObject({ status: 'closed', readClosed: true, source: 'kernel' });
    expect(probeMany([client])[0]).toEqual(connectionState(client));
  });
});

/** The fd a socket object's handle holds now (tests may read `_handle`). */
function fdOf(target: net.Socket | net.Server): number {
  return (target as unknown as { _handle: { fd: number } })._handle.fd;
}

/**
 * Makes `fd` the lowest free fd number once it is closed: every lower free
 * number is taken by /dev/null until the test ends, since the kernel hands
 * the lowest free number to the next socket.
 */
function fillFdHolesBelow(fd: number): void {
  for (;;) {
    const filler = fs.openSync('/dev/null', 'r');
    if (filler > fd) {
      fs.closeSync(filler);
      return;
    }
    cleanups.push(() => fs.closeSync(filler));
  }
}

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-sweep-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A server listening on an AF_UNIX path: listen() opens its socket synchronously. */
function unixListener(file: string): net.Server {
  const server = net.createServer((s) => s.on('error', () => {}));
  server.listen(file);
  cleanups.push(() => server.close());
  return server;
}

describe.runIf(native !== null)('probeMany: a target closed while the targets are read', () => {
  // The getter destroys targets[0] and opens a listener, which takes the fd
  // number targets[0] gave a moment before.
  async function hostileSweep(wrap: (targets: net.Socket[], trick: () => void) => readonly net.Socket[]) {
    const first = await pair();
    const second = await pair();
    const victim = first.client;
    const victimFd = fdOf(victim);
    fillFdHolesBelow(victimFd);
    const file = path.join(tempDir(), 'l');
    let listener: net.Server | undefined;
    const trick = (): void => {
      if (listener !== undefined) return;
      victim.destroy();
      listener = unixListener(file);
    };
    const entries = probeMany(wrap([victim, second.client], trick));
    expect(listener).toBeDefined();
    // The reuse really happened: the new listener holds the old number.
    expect(fdOf(listener!)).toBe(victimFd);
    expect(connectionState(victimFd)).toMatchObject({ status: 'listening', source: 'kernel' });
    return { entries, victim, other: second.client };
  }

  it('a getter on an array element: the destroyed target gets its own answer, not the listener\'s', async () => {
    const { entries, victim, other } = await hostileSweep((targets, trick) => {
      const other = targets[1]!;
      Object.defineProperty(targets, 1, {
        get() {
          trick();
          return other;
        },
      });
      return targets;
    });
    expect(entries[0]).toEqual(connectionState(victim));
    expect(entries[0]).toMatchObject({ status: 'closed', tcpState: null, source: 'flags' });
    expect(entries[0]!.error).toBeUndefined();
    expect(entries[1]).toMatchObject({ status: 'open', tcpState: 'ESTABLISHED', source: 'kernel' });
    expect(entries[1]).toEqual(connectionState(other));
  });

  it('probeManyAsync: a target whose _handle getter closes an earlier target as the chunk is read: that target gets its own answer', async () => {
    const first = await pair();
    const second = await pair();
    const victim = first.client;
    const victimFd = fdOf(victim);
    fillFdHolesBelow(victimFd);
    const file = path.join(tempDir(), 'l');
    let listener: net.Server | undefined;
    let reads = 0;
    // The first read validates the targets; the second, as the chunk's fds
    // are read, comes after the victim's fd and before the cookies.
    const hostile = new Proxy(second.client, {
      get(socket, key) {
        if (key === '_handle' && ++reads === 2) {
          victim.destroy();
          listener = unixListener(file);
        }
        return Reflect.get(socket, key, socket) as unknown;
      },
    });
    const entries = await probeManyAsync([victim, hostile]);
    expect(listener).toBeDefined();
    expect(fdOf(listener!)).toBe(victimFd);
    expect(entries[0]).toMatchObject({ status: 'closed', tcpState: null, source: 'flags' });
    expect(entries[0]).toEqual(connectionState(victim));
    expect(entries[1]).toMatchObject({ status: 'open', tcpState: 'ESTABLISHED', source: 'kernel' });
  });

  it('a Proxy over the array: the same', async () => {
    const { entries, victim, other } = await hostileSweep(
      (targets, trick) =>
        new Proxy(targets, {
          get(array, key, receiver) {
            if (key === '1') trick();
            return Reflect.get(array, key, receiver) as unknown;
          },
        }),
    );
    expect(entries[0]).toMatchObject({ status: 'closed', tcpState: null, source: 'flags' });
    expect(entries[0]).toEqual(connectionState(victim));
    expect(entries[1]).toEqual(connectionState(other));
    expect(entries[1]!.status).toBe('open');
  });

  it('a target re-opened on the same fd number by code run after the probe is probed again, not given the old holder\'s answer', async () => {
    // An fd number seen again is no proof: here a server is closed while
    // the targets are read (a client takes its fd for the probe), then
    // listens again on the same number by the time its fd could be re-read.
    const dir = tempDir();
    const server = unixListener(path.join(dir, 's'));
    await once(server, 'listening');
    const { client } = await pair();
    const serverFd = fdOf(server);
    fillFdHolesBelow(serverFd);
    const other = unixListener(path.join(dir, 'o'));
    await once(other, 'listening');
    let intruder: net.Socket | undefined;
    let intruderFd = -1;
    let relistenedFd = -1;
    // A socket object whose handle runs code when its fd is read again
    // once the intruder holds the server's old number (its answer is the
    // client's: it claims the client's fd).
    const clientFd = fdOf(client);
    const hostile = new net.Socket();
    (hostile as unknown as { _handle: unknown })._handle = {
      get fd() {
        if (intruder !== undefined && relistenedFd === -1) {
          intruder!.destroy();
          server.listen(path.join(dir, 's2'));
          relistenedFd = fdOf(server);
        }
        return clientFd;
      },
    };
    const targets: (net.Socket | net.Server)[] = [hostile, server, client];
    Object.defineProperty(targets, 2, {
      get() {
        server.close();
        intruder = net.connect(path.join(dir, 'o'));
        intruder.on('error', () => {});
        cleanups.push(() => intruder!.destroy());
        intruderFd = fdOf(intruder);
        return client;
      },
    });
    const entries = probeMany(targets);
    expect(intruderFd).toBe(serverFd);
    expect(relistenedFd).toBe(serverFd);
    expect(server.listening).toBe(true);
    // The server's answer is its own listening socket's, never the
    // intruder's connected one.
    expect(entries[1]).toMatchObject({ status: 'listening', tcpState: null, source: 'kernel' });
    expect(entries[1]).toEqual(connectionState(server));
    expect(entries[0]).toEqual(connectionState(client));
    expect(entries[2]).toEqual(connectionState(client));
  });
});
