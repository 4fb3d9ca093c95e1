import * as fs from 'node:fs';
import * as net from 'node:net';
import { describe, expect, it } from 'vitest';
import { probeMany } from '../src/probe/probe-many';
import { probeManyAsync, SWEEP_CHUNK } from '../src/probe/sweep';
import { caught } from './helpers/errors';
import { blockThreadPool } from './helpers/sweep-threadpool';
import { listen, perTestCleanup, waitFor } from './helpers/sockets';

const { cleanups, pair } = perTestCleanup();

function fdOf(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

/** A closed fd number that stays closed: far above every open one. */
function unusedFd(): number {
  return Math.max(...fs.readdirSync('/proc/self/fd').map(Number)) + 500;
}

describe('probeManyAsync', () => {
  it('answers as probeMany does, target by target, in order', async () => {
    const open = await pair();
    const closing = await pair();
    closing.peer.end();
    await waitFor(() => probeMany([closing.client])[0]!.status === 'peerClosed');
    const destroyed = await pair();
    destroyed.client.destroy();
    const server = net.createServer();
    cleanups.push(() => server.close());
    await listen(server);
    const badFd = unusedFd();
    const targets = [open.client, open.peer, closing.client, destroyed.client, server, fdOf(open.client), badFd];

    const sync = probeMany(targets);
    const async = await probeManyAsync(targets);

    expect(async.map((e) => [e.status, e.tcpState, e.source])).toEqual([
      ['open', 'ESTABLISHED', 'kernel'],
      ['open', 'ESTABLISHED', 'kernel'],
      ['peerClosed', 'CLOSE_WAIT', 'kernel'],
      ['closed', null, 'flags'],
      ['listening', 'LISTEN', 'kernel'],
      ['open', 'ESTABLISHED', 'kernel'],
      ['unknown', null, 'kernel'],
    ]);
    expect(async.slice(0, 6)).toEqual(sync.slice(0, 6));
    expect(async[6]!.error).toMatchObject({ code: 'EBADF', syscall: 'getsockopt' });
    expect(sync[6]!.error).toMatchObject({ code: 'EBADF' });
  });

  it('drops a row whose fd was closed and reused while the sweep waited: never the new socket\'s state', async () => {
    const server = net.createServer((s) => s.on('error', () => {}));
    cleanups.push(() => server.close());
    const port = await listen(server);
    const connect = async (): Promise<net.Socket> => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      cleanups.push(() => socket.destroy());
      await new Promise((resolve) => socket.once('connect', resolve));
      return socket;
    };
    const victim = { client: await connect() };
    const other = { client: await connect() };
    const victimFd = fdOf(victim.client);
    const pool = blockThreadPool();
    let released = false;
    cleanups.push(() => {
      if (!released) void pool.release();
    });
    // Collected now (fd and cookie in this synchronous call); probed once
    // the pool is free.
    const sweep = probeManyAsync([victim.client, other.client, victimFd]);
    victim.client.destroy();
    // The kernel hands out the lowest free number: the next socket gets it.
    const reuser = await connect();
    expect(fdOf(reuser)).toBe(victimFd);
    released = true;
    await pool.release();
    const [first, second, raw] = await sweep;

    expect(first).toMatchObject({ status: 'closed', tcpState: null, source: 'flags' });
    expect(second).toMatchObject({ status: 'open', tcpState: 'ESTABLISHED', source: 'kernel' });
    expect(raw).toMatchObject({ status: 'unknown', tcpState: null });
    expect(raw!.error).toMatchObject({ name: 'SockstateError', code: 'ERR_SOCKSTATE_FD_CHANGED' });
    expect(raw!.error!.message).toContain('targets[2]');
  });

  it('sweeps more targets than one chunk, all of them', async () => {
    const server = net.createServer({ allowHalfOpen: true }, (s) => s.on('error', () => {}));
    cleanups.push(() => server.close());
    const port = await listen(server);
    const n = SWEEP_CHUNK + 500;
    const clients: net.Socket[] = [];
    cleanups.push(() => clients.forEach((c) => c.destroy()));
    await Promise.all(
      Array.from({ length: n }, () => {
        const c = net.connect(port, '127.0.0.1');
        c.on('error', () => {});
        clients.push(c);
        return new Promise((resolve) => c.once('connect', resolve));
      }),
    );
    clients[7]!.end();
    await waitFor(() => probeMany([clients[7]!])[0]!.tcpState === 'FIN_WAIT2');

    const result = await probeManyAsync(clients);

    expect(result).toHaveLength(n);
    const statuses = result.map((e) => e.status);
    expect(statuses.filter((s) => s === 'open')).toHaveLength(n - 1);
    expect(statuses[7]).toBe('localClosed');
    expect(result.every((e) => e.source === 'kernel' && e.error === undefined)).toBe(true);
  });

  it('refuses a non-array at once, and a bad element through the promise', async () => {
    const err = caught(() => probeManyAsync('x' as never));
    expect(err).toBeInstanceOf(TypeError);
    expect(err.code).toBe('ERR_INVALID_ARG_TYPE');
    const { client } = await pair();
    await expect(probeManyAsync([client, {} as never])).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_TYPE',
      message: expect.stringContaining('targets[1]'),
    });
    await expect(probeManyAsync([-1])).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(await probeManyAsync([])).toEqual([]);
  });

  it('refuses an array longer than probeMany takes at once, without copying it', () => {
    const err = caught(() => probeManyAsync(new Array(2 ** 32 - 1)));
    expect(err).toBeInstanceOf(RangeError);
    expect(err.code).toBe('ERR_OUT_OF_RANGE');
    expect(err.message).toContain('"targets.length"');
  });
});
