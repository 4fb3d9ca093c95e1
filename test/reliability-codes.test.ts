import { execFile } from 'node:child_process';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { connectionState, isReusable, probeMany, takeSocketError, tcpInfo, watch } from '../src/index';
import { native } from '../src/probe/native';
import { caught } from './helpers/errors';
import { busyWait, fixtures, perTestCleanup } from './helpers/sockets';

const run = promisify(execFile);
const { cleanups, pair } = perTestCleanup();

function udpFd(udp: dgram.Socket): number {
  const key = Object.getOwnPropertySymbols(udp).find((s) => s.description === 'state symbol');
  return (udp as unknown as Record<symbol, { handle: { fd: number } }>)[key!]!.handle.fd;
}

describe.runIf(native !== null)('one code for one situation', () => {
  it.each(['udp4', 'udp6'] as const)('a %s fd is EOPNOTSUPP for tcpInfo and connectionState alike', async (type) => {
    const udp = dgram.createSocket(type);
    cleanups.push(() => udp.close());
    udp.bind(0, type === 'udp4' ? '127.0.0.1' : '::1');
    await once(udp, 'listening');
    const fd = udpFd(udp);
    expect(caught(() => tcpInfo(fd))).toMatchObject({ code: 'EOPNOTSUPP', syscall: 'getsockopt', errno: -95 });
    expect(caught(() => connectionState(fd))).toMatchObject({ code: 'EOPNOTSUPP' });
    expect(probeMany([fd])[0]!.error).toMatchObject({ code: 'EOPNOTSUPP' });
  });

  it('Object.create(net.Socket.prototype) is ERR_INVALID_ARG_VALUE everywhere, never an uncoded TypeError', () => {
    const fake = Object.create(net.Socket.prototype) as net.Socket;
    const calls: [string, () => unknown][] = [
      ['target', () => connectionState(fake)],
      ['target', () => tcpInfo(fake)],
      ['target', () => takeSocketError(fake)],
      ['target', () => watch(fake)],
      ['targets[0]', () => probeMany([fake])],
      ['target', () => isReusable(fake)],
    ];
    for (const [name, call] of calls) {
      const err = caught(call);
      expect(err).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
      expect(err.message).toContain(`'${name}'`);
    }
  });

  it('a cluster worker\'s round-robin server: "listens through another process", not "not listening"', async () => {
    const { stdout } = await run(process.execPath, [path.join(fixtures, 'reliability-cluster.js')], { timeout: 15_000 });
    const out = JSON.parse(stdout.trim()) as { listening: boolean; state: string; code: string; message: string };
    expect(out).toMatchObject({ listening: true, state: 'listening', code: 'ERR_SOCKSTATE_NO_FD' });
    expect(out.message).toBe(
      'tcpInfo(): the server listens through another process (a cluster worker under round-robin scheduling): the listening socket is not in this process',
    );
  });
});

describe.runIf(native !== null)('unsentBytes once the kernel has discarded the bytes', () => {
  it('a reset connection with megabytes queued reports 0 unsent and 0 unacked', async () => {
    const { client, peer } = await pair();
    // The peer stops reading; we queue far more than both buffers hold.
    peer.pause();
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < 8; i++) client.write(chunk);
    const deadline = Date.now() + 3000;
    let before = connectionState(client);
    while (before.unsentBytes === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      before = connectionState(client);
    }
    expect(before).toMatchObject({ status: 'open', tcpState: 'ESTABLISHED' });
    expect(before.unsentBytes).toBeGreaterThan(0);
    // The kernel's own counter (write_seq - snd_nxt) is what stays behind.
    peer.resetAndDestroy();
    busyWait(20);
    const end = Date.now() + 2000;
    while (connectionState(client).status !== 'reset' && Date.now() < end);
    const after = connectionState(client);
    expect(after).toMatchObject({ status: 'reset', tcpState: 'CLOSE', pendingError: true, unsentBytes: 0, unackedBytes: 0 });
    expect(tcpInfo(client).notsentBytes).toBeGreaterThan(0);
    expect(probeMany([client])[0]).toEqual(after);
  });
});
