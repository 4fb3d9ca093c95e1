import * as net from 'node:net';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import * as http from 'node:http';
import { Agent } from '../src/integrations/agent';
import { publishConnection, publishReuseCheck } from '../src/policy/channel';
import { tcpInfo } from '../src/index';
import { TcpTracker } from '../src/metrics/tracker';
import { collectTcpMetrics, type TcpMetricsTracker } from '../src/metrics/prometheus';
import { caught } from './helpers/errors';
import { withoutPeer } from './helpers/metrics-peer';
import { blockThreadPool } from './helpers/sweep-threadpool';
import { listen, perTestCleanup, waitFor } from './helpers/sockets';

const { cleanups } = perTestCleanup();

type Sample = { labels: Record<string, string | number>; value: number; metricName?: string };

/** Every sample of the registry, by sample name (histograms: `_bucket`, `_sum`, `_count`). */
async function scrape(registry: Registry): Promise<Map<string, Sample[]>> {
  const out = new Map<string, Sample[]>();
  for (const metric of (await registry.getMetricsAsJSON()) as unknown as { name: string; values: Sample[] }[]) {
    for (const sample of metric.values) {
      const name = sample.metricName ?? metric.name;
      if (!out.has(name)) out.set(name, []);
      out.get(name)!.push(sample);
    }
  }
  return out;
}

/** The value of the one sample of `name` whose labels include `labels`; 0 when none. */
function valueOf(samples: Map<string, Sample[]>, name: string, labels: Record<string, string>): number {
  const found = (samples.get(name) ?? []).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]?.value ?? 0;
}

function statuses(samples: Map<string, Sample[]>, role: string, scope: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples.get('sockstate_connections') ?? []) {
    if (s.labels.role === role && s.labels.scope === scope && s.value !== 0) out[String(s.labels.status)] = s.value;
  }
  return out;
}

function tracked(options: Parameters<typeof collectTcpMetrics>[0] = {}): { registry: Registry; tracker: TcpMetricsTracker } {
  const registry = new Registry();
  const tracker = collectTcpMetrics({ register: registry, ...options });
  cleanups.push(() => tracker.stop());
  return { registry, tracker };
}

async function server(options: net.ServerOpts = {}, onConnection?: (s: net.Socket) => void): Promise<{ server: net.Server; port: number; accepted: net.Socket[] }> {
  const accepted: net.Socket[] = [];
  const srv = net.createServer(options, (s) => {
    s.on('error', () => {});
    s.resume();
    accepted.push(s);
    onConnection?.(s);
  });
  cleanups.push(() => {
    accepted.forEach((s) => s.destroy());
    srv.close();
  });
  return { server: srv, port: await listen(srv), accepted };
}

async function connect(port: number, options: Partial<net.TcpNetConnectOpts> = {}): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', ...options });
  socket.on('error', () => {});
  cleanups.push(() => socket.destroy());
  await new Promise((resolve) => socket.once('connect', resolve));
  return socket;
}

describe('collectTcpMetrics: connections by status', () => {
  it('counts open, peerClosed (a CLOSE_WAIT leak) and localClosed exactly, on both ends', async () => {
    const { registry, tracker } = tracked();
    const s = await server({ allowHalfOpen: true });
    tracker.track(s.server, { scope: 'api' });
    const open = await connect(s.port, { allowHalfOpen: true });
    const leaked = await connect(s.port, { allowHalfOpen: true });
    const ended = await connect(s.port, { allowHalfOpen: true });
    await waitFor(() => s.accepted.length === 3);
    for (const c of [open, leaked, ended]) tracker.track(c, { scope: 'api' });
    // The client closes; the application never closes its end: CLOSE_WAIT.
    leaked.end();
    // The server ends its side; the client keeps its own open.
    s.accepted[2]!.end();
    await waitFor(() => s.accepted[1]!.readableEnded && ended.readableEnded);

    const samples = await scrape(registry);

    expect(statuses(samples, 'server', 'api')).toEqual({ open: 1, peerClosed: 1, localClosed: 1 });
    expect(statuses(samples, 'client', 'api')).toEqual({ open: 1, localClosed: 1, peerClosed: 1 });
    // Every status has its series, zeros included: 9 per (role, scope).
    expect(samples.get('sockstate_connections')).toHaveLength(18);
    expect(valueOf(samples, 'sockstate_tcp_rtt_seconds_count', { role: 'server', scope: 'api' })).toBe(3);
    expect(tracker.size).toBe(6);
    expect(tracker.sweeps).toBe(1);
  });

  it('counts a few thousand connections exactly, with one sweep per scrape', async () => {
    const { registry, tracker } = tracked();
    const s = await server();
    tracker.track(s.server, { scope: 'bulk' });
    const n = 2000;
    const clients: net.Socket[] = [];
    for (let i = 0; i < n; i += 200) {
      clients.push(...(await Promise.all(Array.from({ length: Math.min(200, n - i) }, () => connect(s.port)))));
    }
    await waitFor(() => tracker.size === n);

    const first = await scrape(registry);
    const second = await scrape(registry);

    expect(statuses(first, 'server', 'bulk')).toEqual({ open: n });
    expect(valueOf(first, 'sockstate_tcp_rtt_seconds_count', { role: 'server', scope: 'bulk' })).toBe(n);
    expect(valueOf(second, 'sockstate_tcp_rtt_seconds_count', { role: 'server', scope: 'bulk' })).toBe(2 * n);
    expect(tracker.sweeps).toBe(2);
    expect(tracker.dropped).toBe(0);
  });
});

describe('collectTcpMetrics: counters', () => {
  it('adds per-connection deltas and a closed connection\'s final figures exactly once', async () => {
    const { registry, tracker } = tracked();
    const s = await server({}, (socket) => socket.write(Buffer.alloc(200)));
    tracker.track(s.server, { scope: 'echo' });
    const client = await connect(s.port);
    let received = 0;
    client.on('data', (d: Buffer) => (received += d.length));
    client.write(Buffer.alloc(1000));
    await waitFor(() => received === 200 && s.accepted[0] !== undefined && s.accepted[0].bytesRead === 1000);

    const before = await scrape(registry);
    expect(valueOf(before, 'sockstate_tcp_bytes_received_total', { scope: 'echo' })).toBe(1000);
    expect(valueOf(before, 'sockstate_tcp_bytes_sent_total', { scope: 'echo' })).toBe(200);
    expect(valueOf(before, 'sockstate_connections_closed_total', { scope: 'echo' })).toBe(0);

    // 500 more bytes, then the client's FIN: the server ends and destroys
    // its socket, and the figures taken before its fd closes count them.
    client.end(Buffer.alloc(500));
    await waitFor(() => tracker.size === 0);

    const after = await scrape(registry);
    // Data only: neither the client's FIN nor the ACK of the server's own.
    expect(valueOf(after, 'sockstate_tcp_bytes_received_total', { scope: 'echo' })).toBe(1500);
    expect(valueOf(after, 'sockstate_tcp_bytes_sent_total', { scope: 'echo' })).toBe(200);
    expect(valueOf(after, 'sockstate_connections_closed_total', { scope: 'echo' })).toBe(1);
    expect(statuses(after, 'server', 'echo')).toEqual({});
    expect(valueOf(after, 'sockstate_tcp_retransmitted_segments_total', { scope: 'echo' })).toBe(0);

    const again = await scrape(registry);
    for (const name of ['sockstate_tcp_bytes_received_total', 'sockstate_tcp_bytes_sent_total', 'sockstate_connections_closed_total', 'sockstate_tcp_segments_sent_total']) {
      expect(valueOf(again, name, { scope: 'echo' })).toBe(valueOf(after, name, { scope: 'echo' }));
    }
    // Seen by the first scrape: no extra RTT observation at close.
    expect(valueOf(again, 'sockstate_tcp_rtt_seconds_count', { scope: 'echo' })).toBe(1);
  });

  it('observes the RTT at close of a connection no scrape saw', async () => {
    const { registry, tracker } = tracked();
    const s = await server();
    tracker.track(s.server, { scope: 'short' });
    const client = await connect(s.port);
    client.write('x');
    await waitFor(() => s.accepted[0]?.bytesRead === 1);
    client.end();
    await waitFor(() => s.accepted[0]!.destroyed);
    const samples = await scrape(registry);
    expect(valueOf(samples, 'sockstate_tcp_rtt_seconds_count', { scope: 'short' })).toBe(1);
    expect(valueOf(samples, 'sockstate_connections_closed_total', { scope: 'short' })).toBe(1);
    expect(valueOf(samples, 'sockstate_tcp_bytes_received_total', { scope: 'short' })).toBe(1);
    expect(tracker.size).toBe(0);
  });

  it('never counts a socket that took a tracked connection\'s fd during a sweep', async () => {
    const { registry, tracker } = tracked();
    const s = await server();
    tracker.track(s.server, { scope: 'reuse' });
    const keep = await connect(s.port);
    await connect(s.port);
    await waitFor(() => s.accepted.length === 2);
    const victim = s.accepted[1]!;
    const victimFd = (victim as unknown as { _handle: { fd: number } })._handle.fd;
    // An untracked server for the socket that will take the fd.
    const other = await server();

    const pool = blockThreadPool();
    let released = false;
    cleanups.push(() => {
      if (!released) void pool.release();
    });
    const scraping = scrape(registry);
    victim.destroy();
    const reuser = await connect(other.port);
    expect((reuser as unknown as { _handle: { fd: number } })._handle.fd).toBe(victimFd);
    reuser.write(Buffer.alloc(7777));
    await waitFor(() => other.accepted[0]?.bytesRead === 7777);
    released = true;
    await pool.release();
    const samples = await scraping;

    expect(statuses(samples, 'server', 'reuse')).toEqual({ open: 1 });
    expect(valueOf(samples, 'sockstate_tcp_bytes_sent_total', { scope: 'reuse' })).toBe(0);
    expect(valueOf(samples, 'sockstate_tcp_bytes_received_total', { scope: 'reuse' })).toBe(0);
    expect(valueOf(samples, 'sockstate_connections_closed_total', { scope: 'reuse' })).toBe(1);
    expect(tracker.size).toBe(1);
    expect(keep.destroyed).toBe(false);
  });
});

// How each of 100 connections ends once 10 bytes went each way and both
// kernels acknowledged them: only a FIN, a RST or the last write is left.
type Close = (client: net.Socket, accepted: net.Socket) => void | Promise<void>;
const ENDINGS: [string, Close, Partial<net.TcpNetConnectOpts>][] = [
  ['the client ends first', (client) => void client.end(), {}],
  ['the server ends first', (_client, accepted) => void accepted.end(), {}],
  ['the client resets', (client) => void client.resetAndDestroy(), {}],
  ['the server resets', (_client, accepted) => void accepted.resetAndDestroy(), {}],
  [
    // The client reads the FIN and writes 10 bytes that the closed end
    // answers with a RST, unacknowledged; Node reads no more after the
    // FIN, so the application closes its end once the kernel shows CLOSE.
    'the server closes and the client writes into it',
    async (client, accepted) => {
      accepted.destroy();
      await new Promise((resolve) => client.once('end', resolve));
      client.write(Buffer.alloc(10));
      await waitFor(() => tcpInfo(client).state === 'CLOSE');
      client.destroy();
    },
    { allowHalfOpen: true },
  ],
];

describe('collectTcpMetrics: data bytes, not SYN or FIN', () => {
  it.each(ENDINGS)('100 connections with 10 bytes each way count 1,000 each way on both ends when %s', async (_name, close, clientOptions) => {
    const { registry, tracker } = tracked();
    const s = await server({}, (socket) => {
      // The reply goes once the 10 bytes are in.
      socket.on('data', () => {
        if (socket.bytesRead === 10) socket.write(Buffer.alloc(10));
      });
    });
    tracker.track(s.server, { scope: 'x' });
    const n = 100;
    const clients = await Promise.all(
      Array.from({ length: n }, async () => {
        const client = await connect(s.port, clientOptions);
        tracker.track(client, { scope: 'x' });
        client.resume();
        client.write(Buffer.alloc(10));
        return client;
      }),
    );
    const peerOf = (client: net.Socket) => s.accepted.find((a) => a.remotePort === client.localPort)!;
    await waitFor(() => s.accepted.length === n && clients.every((c) => c.bytesRead === 10));
    await waitFor(() => clients.every((c) => tcpInfo(c).unacked === 0 && tcpInfo(peerOf(c)).unacked === 0));
    expect(tracker.size).toBe(2 * n);

    // While open, a sweep already counts the data exactly.
    const open = await scrape(registry);
    for (const role of ['server', 'client']) {
      expect(valueOf(open, 'sockstate_tcp_bytes_sent_total', { role, scope: 'x' })).toBe(10 * n);
      expect(valueOf(open, 'sockstate_tcp_bytes_received_total', { role, scope: 'x' })).toBe(10 * n);
    }

    await Promise.all(clients.map((c) => close(c, peerOf(c))));
    await waitFor(() => tracker.size === 0);

    const closed = await scrape(registry);
    for (const role of ['server', 'client']) {
      expect(valueOf(closed, 'sockstate_connections_closed_total', { role, scope: 'x' })).toBe(n);
      expect(valueOf(closed, 'sockstate_tcp_bytes_sent_total', { role, scope: 'x' })).toBe(10 * n);
      expect(valueOf(closed, 'sockstate_tcp_bytes_received_total', { role, scope: 'x' })).toBe(10 * n);
    }
  });
});

describe('collectTcpMetrics: guards and reuse checks', () => {
  it('tracks what an owner announces on the channels, and nothing of other owners', async () => {
    const { registry, tracker } = tracked();
    const s = await server();
    const pool = { name: 'a pool guard' };
    const stranger = {};
    tracker.track(pool, { scope: 'db' });
    const mine = await connect(s.port);
    const theirs = await connect(s.port);
    publishConnection(pool, mine);
    publishConnection(stranger, theirs);
    publishReuseCheck(pool, true, 'idle');
    publishReuseCheck(pool, true, 'idle');
    publishReuseCheck(pool, false, 'closed');
    publishReuseCheck(stranger, false, 'closed');

    const samples = await scrape(registry);

    expect(tracker.size).toBe(1);
    expect(statuses(samples, 'client', 'db')).toEqual({ open: 1 });
    expect(valueOf(samples, 'sockstate_reuse_checks_total', { scope: 'db', result: 'idle' })).toBe(2);
    expect(valueOf(samples, 'sockstate_reuse_checks_total', { scope: 'db', result: 'closed' })).toBe(1);
    expect(samples.get('sockstate_reuse_checks_total')).toHaveLength(2);
  });

  it('tracks the connections and reuse checks of a sockstate HTTP Agent', async () => {
    const { registry, tracker } = tracked();
    const web = http.createServer((_req, res) => res.end('ok'));
    cleanups.push(() => web.close());
    const port = await listen(web);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    tracker.track(agent, { scope: 'upstream' });
    const get = () =>
      new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, agent }, (res) => res.resume().on('end', () => resolve(res.statusCode!))).on('error', reject);
      });
    expect([await get(), await get(), await get()]).toEqual([200, 200, 200]);

    const samples = await scrape(registry);

    expect(tracker.size).toBe(1);
    expect(statuses(samples, 'client', 'upstream')).toEqual({ open: 1 });
    expect(valueOf(samples, 'sockstate_reuse_checks_total', { scope: 'upstream', result: 'idle' })).toBe(2);
    expect(valueOf(samples, 'sockstate_tcp_bytes_received_total', { role: 'client', scope: 'upstream' })).toBeGreaterThan(0);
  });

  it('tracks a socket announced while still connecting once it connects', async () => {
    const { tracker } = tracked();
    const s = await server();
    const pool = {};
    tracker.track(pool, { scope: 'db' });
    const socket = net.connect(s.port, '127.0.0.1');
    cleanups.push(() => socket.destroy());
    publishConnection(pool, socket);
    expect(tracker.size).toBe(0);
    await new Promise((resolve) => socket.once('connect', resolve));
    expect(tracker.size).toBe(1);
  });
});

describe('collectTcpMetrics: bounded labels, stop, errors', () => {
  it('never labels with an address, port or fd', async () => {
    const { registry, tracker } = tracked({ labels: { service: 'checkout' } });
    const s = await server();
    tracker.track(s.server);
    await connect(s.port);
    await waitFor(() => tracker.size === 1);
    const text = await registry.metrics();
    expect(text).not.toContain('127.0.0.1');
    expect(text).not.toContain(String(s.port));
    const names = new Set([...text.matchAll(/[{,]([a-z_]+)="/g)].map((m) => m[1]));
    expect([...names].sort()).toEqual(['le', 'role', 'scope', 'service', 'status']);
    expect(text).toContain('sockstate_connections{service="checkout",role="server",scope="default",status="open"} 1');
  });

  it('caps distinct scopes', async () => {
    const { tracker } = tracked({ maxScopes: 2 });
    const a = net.createServer();
    tracker.track(a, { scope: 'one' });
    tracker.track(a, { scope: 'two' });
    const err = caught(() => tracker.track(a, { scope: 'three' }));
    expect(err).toMatchObject({ name: 'SockstateError', code: 'ERR_SOCKSTATE_TOO_MANY_SCOPES' });
    expect(err.message).toContain("'three'");
    expect(() => tracker.track(a, { scope: 'one' })).not.toThrow();
  });

  it('stop() unregisters every metric, removes its listeners and hooks, and refuses more', async () => {
    const registry = new Registry();
    const tracker = collectTcpMetrics({ register: registry, prefix: 'app_' });
    const s = await server();
    const listeners = s.server.listenerCount('connection');
    const handle = tracker.track(s.server);
    expect(s.server.listenerCount('connection')).toBe(listeners + 1);
    await connect(s.port);
    await waitFor(() => handle.connections === 1);
    expect(Object.hasOwn(s.accepted[0]!, '_destroy')).toBe(true);
    expect((await registry.getMetricsAsJSON()).map((m) => m.name)).toContain('app_sockstate_tcp_rtt_seconds');
    const closeListeners = s.accepted[0]!.listenerCount('close');

    tracker.stop();

    expect(s.accepted[0]!.listenerCount('close')).toBe(closeListeners - 1);
    expect(await registry.getMetricsAsJSON()).toEqual([]);
    expect(s.server.listenerCount('connection')).toBe(listeners);
    expect(Object.hasOwn(s.accepted[0]!, '_destroy')).toBe(false);
    expect(tracker.size).toBe(0);
    expect(caught(() => tracker.track(s.server))).toMatchObject({ code: 'ERR_SOCKSTATE_TRACKER_STOPPED' });
    // The same registry takes a new tracker.
    collectTcpMetrics({ register: registry, prefix: 'app_' }).stop();
  });

  it('two trackers of one connection each count its final figures once', async () => {
    const one = tracked();
    const two = tracked({ prefix: 'two_' });
    const s = await server();
    one.tracker.track(s.server, { scope: 'x' });
    two.tracker.track(s.server, { scope: 'x' });
    const client = await connect(s.port);
    client.write(Buffer.alloc(10));
    await waitFor(() => s.accepted[0]?.bytesRead === 10);
    s.accepted[0]!.destroy();
    await waitFor(() => one.tracker.size === 0 && two.tracker.size === 0);
    const a = await scrape(one.registry);
    const b = await scrape(two.registry);
    expect(valueOf(a, 'sockstate_connections_closed_total', { scope: 'x' })).toBe(1);
    expect(valueOf(b, 'two_sockstate_connections_closed_total', { scope: 'x' })).toBe(1);
    expect(valueOf(a, 'sockstate_tcp_bytes_received_total', { scope: 'x' })).toBe(10);
    expect(valueOf(b, 'two_sockstate_tcp_bytes_received_total', { scope: 'x' })).toBe(10);
  });

  it('the first tracker stopping leaves the second one\'s final figures and nothing of its own', async () => {
    const one = tracked();
    const two = tracked({ prefix: 'two_' });
    const s = await server();
    one.tracker.track(s.server, { scope: 'x' });
    two.tracker.track(s.server, { scope: 'x' });
    const client = await connect(s.port);
    client.write(Buffer.alloc(10));
    await waitFor(() => s.accepted[0]?.bytesRead === 10 && one.tracker.size === 1 && two.tracker.size === 1);
    const accepted = s.accepted[0]!;
    one.tracker.stop();
    // The second tracker still takes its final figures before the fd closes.
    accepted.destroy();
    await waitFor(() => two.tracker.size === 0);
    const b = await scrape(two.registry);
    expect(valueOf(b, 'two_sockstate_connections_closed_total', { scope: 'x' })).toBe(1);
    expect(valueOf(b, 'two_sockstate_tcp_bytes_received_total', { scope: 'x' })).toBe(10);
    // And once the last tracker has left, the socket is as it was.
    expect(Object.hasOwn(accepted, '_destroy')).toBe(false);
  });

  it('lets go of a socket announced while connecting whose connect fails', async () => {
    const { tracker } = tracked();
    const closed = net.createServer();
    const port = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));
    const pool = {};
    tracker.track(pool, { scope: 'db' });
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const connectListeners = socket.listenerCount('connect');
    const closeListeners = socket.listenerCount('close');
    publishConnection(pool, socket);
    expect(socket.listenerCount('connect')).toBe(connectListeners + 1);
    await new Promise((resolve) => socket.once('close', resolve));
    // Refused: no 'connect' ever; the tracker's listeners are gone with it.
    expect(socket.listenerCount('connect')).toBe(connectListeners);
    expect(socket.listenerCount('close')).toBe(closeListeners);
    expect(tracker.size).toBe(0);
  });

  it('lets go of the record of a tracked socket once the socket is let go', async () => {
    const tracker = new TcpTracker();
    cleanups.push(() => tracker.stop());
    const s = await server();
    const serverHandle = tracker.track(s.server);
    // Closed after connecting, with its final figures taken.
    const closing = await connect(s.port);
    const handle = tracker.track(closing);
    expect([tracker.recordCount, handle.connections]).toEqual([2, 1]);
    closing.destroy();
    expect([tracker.recordCount, handle.connections, tracker.size]).toEqual([1, 0, 1]);
    handle.stop();
    // Tracked while connecting; the connect is refused.
    const refusing = net.createServer();
    const refusedPort = await listen(refusing);
    await new Promise((resolve) => refusing.close(resolve));
    const refused = net.connect(refusedPort, '127.0.0.1');
    refused.on('error', () => {});
    tracker.track(refused);
    expect(tracker.recordCount).toBe(2);
    await new Promise((resolve) => refused.once('close', resolve));
    expect(tracker.recordCount).toBe(1);
    // Already destroyed, or already tracked through the server: nothing to hold.
    tracker.track(closing);
    await connect(s.port);
    await waitFor(() => s.accepted.length === 2 && s.accepted[0]!.destroyed);
    tracker.track(s.accepted[1]!);
    expect([tracker.recordCount, tracker.size]).toEqual([1, 1]);
    serverHandle.stop();
    expect([tracker.recordCount, tracker.size]).toEqual([0, 0]);
  });

  it('a handle stops one target only', async () => {
    const { tracker } = tracked();
    const a = await server();
    const b = await server();
    const ha = tracker.track(a.server, { scope: 'a' });
    tracker.track(b.server, { scope: 'b' });
    await connect(a.port);
    await connect(b.port);
    await waitFor(() => tracker.size === 2);
    ha.stop();
    expect(ha.connections).toBe(0);
    expect(tracker.size).toBe(1);
    await connect(a.port);
    await connect(b.port);
    await waitFor(() => tracker.size === 2);
    expect(a.accepted).toHaveLength(2);
  });

  it('refuses bad options and targets with Node-style errors', () => {
    const registry = new Registry();
    expect(caught(() => collectTcpMetrics({ register: {} as never }))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    expect(caught(() => collectTcpMetrics({ register: registry, prefix: 'bad-prefix' }))).toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
      message: expect.stringContaining('options.prefix'),
    });
    expect(caught(() => collectTcpMetrics({ register: registry, labels: { scope: 'x' } }))).toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
    });
    expect(caught(() => collectTcpMetrics({ register: registry, maxScopes: 0 }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    const tracker = collectTcpMetrics({ register: registry });
    cleanups.push(() => tracker.stop());
    expect(caught(() => collectTcpMetrics({ register: registry }))).toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
      message: expect.stringContaining('sockstate_connections'),
    });
    expect(caught(() => tracker.track(null as never))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    expect(caught(() => tracker.track(net.createServer(), { role: 'peer' as never }))).toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
    });
    expect(caught(() => tracker.track(net.createServer(), { scope: '' }))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    // Only own options are read.
    const inherited = Object.create({ maxScopes: 0 }) as object;
    expect(() => collectTcpMetrics({ ...inherited, register: new Registry() }).stop()).not.toThrow();
  });

  it('says how to install prom-client when it is missing', async () => {
    const stdout = await withoutPeer('prom-client', "require('./lib/metrics/prometheus.js').collectTcpMetrics()");
    expect(stdout).toBe(
      "ERR_SOCKSTATE_PEER_MISSING sockstate/prometheus needs the optional peer dependency 'prom-client', which is not installed: run npm install prom-client",
    );
  });
});
