import { type ChildProcess, spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { describe, expect, it, vi } from 'vitest';
import { connectionState } from '../src/index';
import { type ProbeManyEntry, probeMany } from '../src/probe/probe-many';
import { perTestCleanup, waitFor } from './helpers/sockets';
import { caught } from './helpers/errors';

const { cleanups, pair } = perTestCleanup();

function udpFd(udp: dgram.Socket): number {
  const key = Object.getOwnPropertySymbols(udp).find((s) => s.description === 'state symbol');
  return (udp as unknown as Record<symbol, { handle: { fd: number } }>)[key!]!.handle.fd;
}

/**
 * A closed fd number that stays closed: the kernel hands out the lowest
 * free number, so one far above every open fd is not reused meanwhile.
 */
function unusedFd(): number {
  const open = fs.readdirSync('/proc/self/fd').map(Number);
  return Math.max(...open) + 500;
}

/** Soft RLIMIT_NOFILE of this process (Node raises it to the hard limit at start). */
function fdLimit(): number {
  const line = fs
    .readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === undefined || soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
}

describe('probeMany', () => {
  it('answers a mixed list in one call, each entry on its own', async () => {
    const open = await pair();
    const halfClosed = await pair();
    halfClosed.peer.end();
    await waitFor(() => connectionState(halfClosed.client).status === 'peerClosed', 5000, 'CLOSE_WAIT');

    const gone = await pair();
    gone.client.destroy();

    const closedFd = unusedFd();
    const file = fs.openSync(__filename, 'r');
    cleanups.push(() => fs.closeSync(file));

    const sockPath = path.join(os.tmpdir(), `sockstate-probemany-${process.pid}.sock`);
    fs.rmSync(sockPath, { force: true });
    const unixServer = net.createServer((s) => s.on('error', () => {}));
    unixServer.listen(sockPath);
    await once(unixServer, 'listening');
    const unixClient = net.connect(sockPath);
    cleanups.push(() => {
      unixClient.destroy();
      unixServer.close();
    });
    await once(unixClient, 'connect');

    const udp = dgram.createSocket('udp4');
    cleanups.push(() => udp.close());
    udp.bind(0, '127.0.0.1');
    await once(udp, 'listening');

    // The connect syscall is issued a tick after net.connect(): no fd yet.
    const connecting = net.connect((open.server.address() as net.AddressInfo).port, '127.0.0.1');
    connecting.on('error', () => {});
    cleanups.push(() => connecting.destroy());

    const targets = [
      open.client,
      halfClosed.client,
      gone.client,
      closedFd,
      unixClient,
      open.server,
      connecting,
      udpFd(udp),
      file,
    ];
    const states = probeMany(targets);
    expect(states).toHaveLength(targets.length);
    expect(states.map((s) => s.status)).toEqual([
      'open',
      'peerClosed',
      'closed',
      'unknown',
      'open',
      'listening',
      'connecting',
      'unknown',
      'unknown',
    ]);
    expect(states[0]).toMatchObject({ tcpState: 'ESTABLISHED', source: 'kernel', pendingError: false });
    expect(states[1]).toMatchObject({ tcpState: 'CLOSE_WAIT', readClosed: true, source: 'kernel' });
    expect(states[2]).toMatchObject({ tcpState: null, source: 'flags' });
    expect(states[3]!.error).toMatchObject({ code: 'EBADF', errno: -os.constants.errno.EBADF, syscall: 'getsockopt' });
    expect(states[3]).toMatchObject({ tcpState: null, unreadBytes: 0, source: 'kernel' });
    expect(states[4]).toMatchObject({ tcpState: null, source: 'kernel' });
    expect(states[5]).toMatchObject({ tcpState: 'LISTEN', source: 'kernel' });
    expect(states[6]).toMatchObject({ tcpState: null, source: 'flags' });
    expect(states[7]!.error!.errno).toBe(-os.constants.errno.EOPNOTSUPP);
    expect(states[8]!.error).toMatchObject({ code: 'ENOTSOCK', syscall: 'getsockopt' });
    // Successful entries carry no error key at all, and equal what
    // connectionState() says for the same target.
    for (const i of [0, 1, 2, 4, 5, 6]) {
      expect('error' in states[i]!).toBe(false);
      expect(states[i]).toEqual(connectionState(targets[i]!));
    }
    // The failed ones are exactly what connectionState() throws.
    expect(caught(() => connectionState(closedFd))).toMatchObject({ code: 'EBADF', syscall: 'getsockopt' });
    expect(caught(() => connectionState(file))).toMatchObject({ code: 'ENOTSOCK' });
  });

  it('narrows entries on error', async () => {
    const { client } = await pair();
    const closedFd = unusedFd();
    const [ok, bad] = probeMany([client, closedFd]) as [ProbeManyEntry, ProbeManyEntry];
    if (ok.error) throw new Error('expected a probed state');
    expect(ok.status).toBe('open');
    if (!bad.error) throw new Error('expected a failure');
    expect(bad.error.code).toBe('EBADF');
    expect(bad.status).toBe('unknown');
  });

  it('returns [] for an empty list and throws for bad arguments, naming the index', async () => {
    expect(probeMany([])).toEqual([]);
    const { client } = await pair();
    for (const bad of [undefined, null, 'sockets', client, new Set([client])]) {
      const err = caught(() => probeMany(bad as never));
      expect(err).toBeInstanceOf(TypeError);
      expect(err.code).toBe('ERR_INVALID_ARG_TYPE');
      expect(err.message).toContain('"targets"');
    }
    const err = caught(() => probeMany([client, client, client, 'x' as never]));
    expect(err).toBeInstanceOf(TypeError);
    expect(err.code).toBe('ERR_INVALID_ARG_TYPE');
    expect(err.message).toContain('"targets[3]"');
    const range = caught(() => probeMany([client, -1]));
    expect(range.code).toBe('ERR_OUT_OF_RANGE');
    expect(range.message).toContain('"targets[1]"');
    const sparse = caught(() => probeMany([client, , client] as never));
    expect(sparse.message).toContain('"targets[1]"');
  });

  it.skipIf(fdLimit() < 5400)('sweeps 5,000 connections to a peer process: open, peerClosed, reset', async () => {
    const N = 5000;
    const peer = await startHolder();
    const clients: net.Socket[] = [];
    cleanups.push(() => {
      for (const c of clients) c.destroy();
      peer.child.kill();
    });
    for (let i = 0; i < N; i += 100) {
      const batch = Array.from({ length: Math.min(100, N - i) }, () => {
        const c = net.connect({ port: peer.port, host: '127.0.0.1', allowHalfOpen: true });
        c.on('error', () => {});
        clients.push(c);
        return once(c, 'connect');
      });
      await Promise.all(batch);
    }
    await peer.command(`count ${N}`);
    expect(probeMany(clients).every((s) => s.status === 'open' && s.tcpState === 'ESTABLISHED')).toBe(true);

    // The peer ends every third connection and resets the next third.
    const ended = clients.filter((_, i) => i % 3 === 1);
    const reset = clients.filter((_, i) => i % 3 === 2);
    await peer.command(`end ${ended.map((c) => c.localPort).join(',')}`);
    // Node would destroy the reset sockets as soon as its loop polls, so
    // the command is sent and the kernel probed without yielding until it
    // shows every RST.
    peer.send(`reset ${reset.map((c) => c.localPort).join(',')}`);
    const expected = clients.map((_, i) => (['open', 'peerClosed', 'reset'] as const)[i % 3]);
    let states = probeMany(clients);
    const deadline = Date.now() + 5000;
    while (states.some((s, i) => s.status !== expected[i]) && Date.now() < deadline) states = probeMany(clients);
    expect(states.map((s) => s.status)).toEqual(expected);
    expect(states.filter((s) => s.status === 'reset').every((s) => s.tcpState === 'CLOSE' && s.pendingError)).toBe(true);

    // Once Node has read the resets, those sockets are destroyed: flags.
    await waitFor(() => reset.every((c) => c.destroyed), 5000, 'Node to see the RSTs');
    states = probeMany(clients);
    expect(states.map((s) => s.status)).toEqual(expected.map((s) => (s === 'reset' ? 'closed' : s)));
    expect(states.filter((_, i) => i % 3 === 2).every((s) => s.source === 'flags')).toBe(true);

    // The scratch buffers shrink their view back for a short list.
    const closedFd = unusedFd();
    const few = probeMany([clients[0]!, closedFd, clients[1]!]);
    expect(few.map((s) => s.status)).toEqual(['open', 'unknown', 'peerClosed']);
  });
});

describe('probeMany without the addon', () => {
  it('answers from flags and refuses raw fds', async () => {
    vi.stubEnv('SOCKSTATE_FORCE_FALLBACK', '1');
    vi.resetModules();
    try {
      const fallback = await import('../src/probe/probe-many');
      const { client, server } = await pair();
      const gone = await pair();
      gone.client.destroy();
      const states = fallback.probeMany([client, gone.client, server]);
      expect(states.map((s) => [s.status, s.source])).toEqual([
        ['open', 'flags'],
        ['closed', 'flags'],
        ['listening', 'flags'],
      ]);
      const err = caught(() => fallback.probeMany([client, 0]));
      expect(err.code).toBe('ERR_SOCKSTATE_UNSUPPORTED');
      expect(err.message).toContain('targets[1]');
      expect(caught(() => fallback.probeMany([client, 'x' as never])).code).toBe('ERR_INVALID_ARG_TYPE');
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});

// A peer process that holds the server ends: "count N" waits until N are
// accepted; "end P,Q" and "reset P,Q" act on the connections from those
// client ports. Each command answers "ok".
const HOLDER = `
const net = require('node:net');
const byPort = new Map();
let want = 0, waiting = false;
const check = () => { if (waiting && byPort.size >= want) { waiting = false; console.log('ok'); } };
const server = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => {});
  byPort.set(s.remotePort, s);
  check();
});
server.listen(0, '127.0.0.1', 2048, () => console.log(server.address().port));
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.split(' ');
  if (cmd === 'count') { want = Number(arg); waiting = true; check(); return; }
  for (const p of arg.split(',')) {
    const s = byPort.get(Number(p));
    if (cmd === 'end') s.end(); else s.resetAndDestroy();
  }
  console.log('ok');
});
process.stdin.on('end', () => process.exit(0));
`;

interface Holder {
  child: ChildProcess;
  port: number;
  /** Writes a command without waiting for the answer. */
  send(line: string): void;
  /** Writes a command and waits for its "ok". */
  command(line: string): Promise<void>;
}

async function startHolder(): Promise<Holder> {
  const child = spawn(process.execPath, ['-e', HOLDER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout! });
  const queue: ((line: string) => void)[] = [];
  lines.on('line', (line) => queue.shift()?.(line));
  const next = () => new Promise<string>((resolve) => queue.push(resolve));
  const port = Number(await next());
  return {
    child,
    port,
    send(line: string) {
      // Its "ok" is consumed later by the queue; nothing waits for it.
      queue.push(() => {});
      child.stdin!.write(`${line}\n`);
    },
    async command(line: string) {
      const answer = next();
      child.stdin!.write(`${line}\n`);
      expect(await answer).toBe('ok');
    },
  };
}
