import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { connectionState, probeMany } from '../src/index';
import { native } from '../src/native';
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
