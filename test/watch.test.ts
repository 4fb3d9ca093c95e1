import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as net from 'node:net';
import * as os from 'node:os';
import { describe, expect, it, vi } from 'vitest';
import type { ConnectionState } from '../src/probe/state';
import type { TcpInfo } from '../src/probe/tcp-info';
import { type ConnectionWatcher, type WatchEnd, watch } from '../src/probe/watch';
import { busyWait, listen, perTestCleanup, sleep, waitFor } from './helpers/sockets';
import { caught } from './helpers/errors';

const { cleanups, pair } = perTestCleanup();

function fdOf(target: net.Socket | net.Server): number {
  return (target as unknown as { _handle: { fd: number } })._handle.fd;
}

/** Records every event a watcher emits, in order. */
function record(w: ConnectionWatcher) {
  const changes: [ConnectionState, ConnectionState][] = [];
  const events: string[] = [];
  w.on('change', (prev, cur) => {
    changes.push([prev, cur]);
    events.push(`change ${prev.status}->${cur.status}`);
  });
  const ended = new Promise<WatchEnd>((resolve) =>
    w.on('end', (end) => {
      events.push(`end ${end.reason}`);
      resolve(end);
    }),
  );
  cleanups.push(() => w.stop());
  return { changes, events, ended };
}

function refedTimeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

describe('watch', () => {
  it('reports a peer FIN as a change, then ends when the socket closes', async () => {
    const { client, peer } = await pair();
    const closeListeners = client.listenerCount('close');
    const w = watch(client, { intervalMs: 10 });
    expect(w.state).toMatchObject({ status: 'open', tcpState: 'ESTABLISHED', source: 'kernel' });
    expect(client.listenerCount('close')).toBe(closeListeners + 1);
    const { changes, events, ended } = record(w);

    peer.end();
    await waitFor(() => changes.length === 1, 5000, 'the FIN to be reported');
    const [prev, cur] = changes[0]!;
    expect(prev).toMatchObject({ status: 'open', tcpState: 'ESTABLISHED' });
    expect(cur).toMatchObject({ status: 'peerClosed', tcpState: 'CLOSE_WAIT', readClosed: true });
    expect(w.state).toBe(cur);

    client.destroy();
    const end = await ended;
    expect(end.reason).toBe('closed');
    expect(end.state).toMatchObject({ status: 'closed', tcpState: null, source: 'flags' });
    expect(end.error).toBeUndefined();
    expect(events).toEqual(['change open->peerClosed', 'change peerClosed->closed', 'end closed']);
    expect(w.active).toBe(false);
    expect(client.listenerCount('close')).toBe(closeListeners);
    // Nothing after 'end'.
    await sleep(50);
    expect(events).toHaveLength(3);
  });

  it('sees a reset before Node does, then the close', async () => {
    const { client, peer } = await pair();
    const w = watch(client, { intervalMs: 1 });
    const { events, changes, ended } = record(w);
    peer.resetAndDestroy();
    // The RST is in our kernel now; timers run before Node polls for it.
    busyWait(50);
    const end = await ended;
    expect(events).toEqual(['change open->reset', 'change reset->closed', 'end closed']);
    expect(changes[0]![1]).toMatchObject({ status: 'reset', tcpState: 'CLOSE', pendingError: true });
    expect(end.state.source).toBe('flags');
  });

  it("emits 'sample' with tcp_info while someone listens", async () => {
    const { client } = await pair();
    client.write('x'.repeat(1000));
    const w = watch(client, { intervalMs: 10 });
    cleanups.push(() => w.stop());
    const samples: [TcpInfo, ConnectionState][] = [];
    w.on('sample', (info, state) => samples.push([info, state]));
    // The peer may delay its ACK: wait for the sample that shows it (the SYN counts one byte).
    await waitFor(() => samples.some(([info]) => info.bytesAcked === 1001n), 5000, 'a sample with the data acked');
    const [info, state] = samples[0]!;
    expect(info.state).toBe('ESTABLISHED');
    expect(typeof info.rtt).toBe('number');
    expect(state).toMatchObject({ status: 'open', tcpState: 'ESTABLISHED' });
  });

  it('never keeps the process alive and stops on stop()', async () => {
    const { client } = await pair();
    const before = refedTimeouts();
    const w = watch(client, { intervalMs: 5 });
    expect(refedTimeouts()).toBe(before);
    const { events, ended } = record(w);
    w.stop();
    expect(await ended).toMatchObject({ reason: 'stopped', state: { status: 'open' } });
    w.stop();
    await sleep(30);
    expect(events).toEqual(['end stopped']);
    expect(client.listenerCount('close')).toBe(0);
  });

  it('ends at once for a socket that is already destroyed', async () => {
    const { client } = await pair();
    client.destroy();
    const w = watch(client);
    expect(w.state).toMatchObject({ status: 'closed', source: 'flags' });
    const { events, ended } = record(w);
    expect((await ended).reason).toBe('closed');
    expect(events).toEqual(['end closed']);
  });

  it('ends when a listening server closes', async () => {
    const server = net.createServer();
    await listen(server);
    const w = watch(server, { intervalMs: 10 });
    expect(w.state).toMatchObject({ status: 'listening', tcpState: 'LISTEN' });
    const { events, ended } = record(w);
    server.close();
    expect(await ended).toMatchObject({ reason: 'closed', state: { status: 'closed' } });
    expect(events).toEqual(['change listening->closed', 'end closed']);
  });

  describe('a raw fd', () => {
    it('ends on a finished kernel state, since the number may be reused after close', async () => {
      const { client, peer } = await pair();
      const w = watch(fdOf(client), { intervalMs: 1 });
      const { events, ended } = record(w);
      peer.resetAndDestroy();
      busyWait(50);
      const end = await ended;
      expect(events).toEqual(['change open->reset', 'end closed']);
      expect(end.state).toMatchObject({ status: 'reset', tcpState: 'CLOSE' });
    });

    it("emits a probe error as 'error' when listened for, and ends with it", async () => {
      const server = net.createServer();
      await listen(server);
      const w = watch(fdOf(server), { intervalMs: 5 });
      const errors: Error[] = [];
      w.on('error', (err) => errors.push(err));
      const { events, ended } = record(w);
      server.close();
      const end = await ended;
      expect(end.reason).toBe('error');
      expect(end.error).toMatchObject({ code: 'EBADF', syscall: 'getsockopt' });
      expect(errors).toEqual([end.error]);
      expect(events).toEqual(['end error']);
    });

    it("does not throw from the timer without an 'error' listener", async () => {
      const server = net.createServer();
      await listen(server);
      const w = watch(fdOf(server), { intervalMs: 5 });
      const { ended } = record(w);
      server.close();
      expect((await ended).error).toMatchObject({ code: 'EBADF' });
    });

    it('throws at once for an fd that cannot be watched', async () => {
      const udp = dgram.createSocket('udp4');
      cleanups.push(() => udp.close());
      udp.bind(0, '127.0.0.1');
      await once(udp, 'listening');
      const key = Object.getOwnPropertySymbols(udp).find((s) => s.description === 'state symbol')!;
      const fd = (udp as unknown as Record<symbol, { handle: { fd: number } }>)[key]!.handle.fd;
      expect(caught(() => watch(fd)).errno).toBe(-os.constants.errno.EOPNOTSUPP);
    });
  });

  it('validates its arguments', async () => {
    const { client } = await pair();
    for (const [options, name] of [
      [null, 'options'],
      ['fast', 'options'],
      [{ intervalMs: '10' }, 'options.intervalMs'],
      [{ intervalMs: 10n }, 'options.intervalMs'],
    ] as const) {
      const err = caught(() => watch(client, options as never));
      expect(err).toBeInstanceOf(TypeError);
      expect(err.code).toBe('ERR_INVALID_ARG_TYPE');
      expect(err.message).toContain(`"${name}"`);
    }
    for (const intervalMs of [0, -1, 1.5, 2 ** 31, Number.NaN, Number.POSITIVE_INFINITY]) {
      const err = caught(() => watch(client, { intervalMs }));
      expect(err).toBeInstanceOf(RangeError);
      expect(err.code).toBe('ERR_OUT_OF_RANGE');
      expect(err.message).toContain('"options.intervalMs"');
    }
    for (const bad of [undefined, 'x', {}]) {
      expect(caught(() => watch(bad as never)).code).toBe('ERR_INVALID_ARG_TYPE');
    }
    // Nothing was left listening on the socket.
    expect(client.listenerCount('close')).toBe(0);
  });
});

describe('watch without the addon', () => {
  it('follows the flags, emits no samples and refuses raw fds', async () => {
    vi.stubEnv('SOCKSTATE_FORCE_FALLBACK', '1');
    vi.resetModules();
    try {
      const fallback = await import('../src/probe/watch');
      const { client, peer } = await pair();
      expect(caught(() => fallback.watch(3)).code).toBe('ERR_SOCKSTATE_UNSUPPORTED');
      const w = fallback.watch(client, { intervalMs: 10 });
      expect(w.state).toMatchObject({ status: 'open', source: 'flags' });
      let samples = 0;
      w.on('sample', () => samples++);
      const { events, ended } = record(w);
      peer.end();
      await waitFor(() => events.length > 0, 5000, 'the flags to change');
      client.destroy();
      await ended;
      expect(events).toEqual(['change open->peerClosed', 'change peerClosed->closed', 'end closed']);
      expect(samples).toBe(0);
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});
