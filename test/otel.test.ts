import * as net from 'node:net';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { publishReuseCheck } from '../src/policy/channel';
import { observeTcpMetrics, type TcpMetricsTracker } from '../src/metrics/otel';
import { caught } from './helpers/errors';
import { withoutPeer } from './helpers/metrics-peer';
import { listen, perTestCleanup, waitFor } from './helpers/sockets';

const { cleanups } = perTestCleanup();

type Point = { attributes: Record<string, unknown>; value: unknown };
type Collected = Map<string, { unit: string; points: Point[] }>;

function newReader(): PeriodicExportingMetricReader {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // Collected on demand only: the interval is never reached in a test.
  return new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
}

async function collectFrom(reader: PeriodicExportingMetricReader): Promise<Collected> {
  const { resourceMetrics, errors } = await reader.collect();
  expect(errors).toEqual([]);
  const out: Collected = new Map();
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      out.set(metric.descriptor.name, { unit: metric.descriptor.unit, points: metric.dataPoints as Point[] });
    }
  }
  return out;
}

function setup(): { reader: PeriodicExportingMetricReader; provider: MeterProvider; collect(): Promise<Collected> } {
  const reader = newReader();
  const provider = new MeterProvider({ readers: [reader] });
  cleanups.push(() => void provider.shutdown());
  return { reader, provider, collect: () => collectFrom(reader) };
}

/** A server whose accepted connections `trackers` track, and `n` open clients. */
async function openConnections(n: number, ...trackers: TcpMetricsTracker[]): Promise<void> {
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => {
    s.on('error', () => {});
    accepted.push(s);
  });
  for (const tracker of trackers) tracker.track(server, { scope: 'api' });
  const port = await listen(server);
  const clients: net.Socket[] = [];
  cleanups.push(() => {
    clients.forEach((c) => c.destroy());
    accepted.forEach((s) => s.destroy());
    server.close();
  });
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(200, n - i) }, () => {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      clients.push(c);
      return new Promise((resolve) => c.once('connect', resolve));
    });
    await Promise.all(batch);
  }
  await waitFor(() => trackers.every((t) => t.size === n), 10_000, `${n} tracked`);
}

const API = { 'sockstate.role': 'server', 'sockstate.scope': 'api' };
const rttCount = (collected: Collected): number => (pointValue(collected, 'sockstate.tcp.rtt', API) as { count: number }).count;
const openCount = (collected: Collected): unknown =>
  pointValue(collected, 'sockstate.connection.count', { ...API, 'sockstate.connection.status': 'open' });

function pointValue(collected: Collected, name: string, attributes: Record<string, string>): unknown {
  const points = (collected.get(name)?.points ?? []).filter((p) =>
    Object.entries(attributes).every(([k, v]) => p.attributes[k] === v),
  );
  if (points.length !== 1) throw new Error(`${name} ${JSON.stringify(attributes)}: ${points.length} points`);
  return points[0]!.value;
}

describe('sockstate/otel', () => {
  it('reports counts by status, byte counters, the RTT histogram and units through the SDK', async () => {
    const { provider, collect } = setup();
    const tracker = observeTcpMetrics({ meterProvider: provider });
    cleanups.push(() => tracker.stop());
    const { server, accepted, clients } = await (async () => {
      const accepted: net.Socket[] = [];
      const server = net.createServer({ allowHalfOpen: true }, (s) => {
        s.on('error', () => {});
        s.resume();
        accepted.push(s);
      });
      tracker.track(server, { scope: 'api' });
      const port = await listen(server);
      const clients: net.Socket[] = [];
      cleanups.push(() => {
        clients.forEach((c) => c.destroy());
        accepted.forEach((s) => s.destroy());
        server.close();
      });
      for (let i = 0; i < 3; i++) {
        const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        c.on('error', () => {});
        clients.push(c);
        await new Promise((resolve) => c.once('connect', resolve));
      }
      return { server, accepted, clients };
    })();
    expect(server.listening).toBe(true);
    clients[0]!.write(Buffer.alloc(300));
    clients[1]!.end();
    await waitFor(() => tracker.size === 3, 5000, 'three tracked');
    await waitFor(() => accepted.some((s) => s.readableEnded), 5000, 'an end');
    await waitFor(() => accepted.some((s) => s.bytesRead === 300), 5000, '300 bytes');

    const first = await collect();
    const attrs = { 'sockstate.role': 'server', 'sockstate.scope': 'api' };
    const status = (s: string) => pointValue(first, 'sockstate.connection.count', { ...attrs, 'sockstate.connection.status': s });
    expect([status('open'), status('peerClosed'), status('closed')]).toEqual([2, 1, 0]);
    expect(first.get('sockstate.connection.count')!.points).toHaveLength(9);
    // 300 bytes; the FIN of the client that ended is not data.
    expect(pointValue(first, 'sockstate.tcp.io', { ...attrs, 'network.io.direction': 'receive' })).toBe(300);
    expect(pointValue(first, 'sockstate.tcp.io', { ...attrs, 'network.io.direction': 'transmit' })).toBe(0);
    const rtt = pointValue(first, 'sockstate.tcp.rtt', attrs) as { count: number; max: number; buckets: { boundaries: number[] } };
    expect(rtt.count).toBe(3);
    expect(rtt.max).toBeLessThan(1);
    expect(rtt.buckets.boundaries[0]).toBe(0.0001);
    expect(rtt.buckets.boundaries.at(-1)).toBe(5);
    expect(first.get('sockstate.tcp.rtt')!.unit).toBe('s');
    expect(first.get('sockstate.tcp.io')!.unit).toBe('By');
    expect(first.get('sockstate.connection.count')!.unit).toBe('{connection}');
    expect(pointValue(first, 'sockstate.tcp.retransmitted_segments', attrs)).toBe(0);

    // The server closes the connection that sent 300 bytes: its final
    // figures count once, and the counts drop.
    accepted.find((s) => s.bytesRead === 300)!.destroy();
    await waitFor(() => tracker.size === 2);
    const second = await collect();
    expect(pointValue(second, 'sockstate.connection.closed', attrs)).toBe(1);
    expect(pointValue(second, 'sockstate.connection.count', { ...attrs, 'sockstate.connection.status': 'open' })).toBe(1);
    expect(pointValue(second, 'sockstate.tcp.io', { ...attrs, 'network.io.direction': 'receive' })).toBe(300);
    expect((pointValue(second, 'sockstate.tcp.rtt', attrs) as { count: number }).count).toBe(5);
    expect(tracker.sweeps).toBe(2);
  });

  // Each collection, by any reader, makes one sweep and records one RTT per
  // open connection into the histogram; the SDK hands every recorded value
  // to every reader of the provider exactly once. 1,200 connections: more
  // than one turn of recording (1,000 values), so a collection that
  // returned while another was still recording would miss values.
  it('two readers of one MeterProvider each receive every RTT value once, whichever collection recorded it', async () => {
    const a = newReader();
    const b = newReader();
    const provider = new MeterProvider({ readers: [a, b] });
    cleanups.push(() => void provider.shutdown());
    const tracker = observeTcpMetrics({ meterProvider: provider });
    cleanups.push(() => tracker.stop());
    const n = 1200;
    await openConnections(n, tracker);

    const first = await collectFrom(a);
    const second = await collectFrom(b);
    const third = await collectFrom(a);
    expect([rttCount(first), rttCount(second), rttCount(third)]).toEqual([n, 2 * n, 3 * n]);
    expect(tracker.sweeps).toBe(3);
    // At once: both collections share one sweep and both return with all of it.
    const [fromA, fromB] = await Promise.all([collectFrom(a), collectFrom(b)]);
    expect(tracker.sweeps).toBe(4);
    expect([rttCount(fromA), rttCount(fromB)]).toEqual([4 * n, 4 * n]);
    expect([openCount(fromA), openCount(fromB)]).toEqual([n, n]);
    // Nothing left over for a later collection.
    expect(rttCount(await collectFrom(b))).toBe(5 * n);
  }, 30_000);

  it('two MeterProviders with a tracker each count their own collections only', async () => {
    const one = setup();
    const two = setup();
    const first = observeTcpMetrics({ meterProvider: one.provider });
    const second = observeTcpMetrics({ meterProvider: two.provider });
    cleanups.push(() => first.stop(), () => second.stop());
    const n = 3;
    await openConnections(n, first, second);

    const counts = [];
    counts.push(rttCount(await one.collect()), rttCount(await two.collect()), rttCount(await one.collect()));
    const [fromOne, fromTwo] = await Promise.all([one.collect(), two.collect()]);
    counts.push(rttCount(fromOne), rttCount(fromTwo));
    expect(counts).toEqual([n, n, 2 * n, 3 * n, 2 * n]);
    expect([first.sweeps, second.sweeps]).toEqual([3, 2]);
    expect([openCount(fromOne), openCount(fromTwo)]).toEqual([n, n]);
  });

  it('counts reuse checks of a tracked guard', async () => {
    const { provider, collect } = setup();
    const tracker = observeTcpMetrics({ meterProvider: provider });
    cleanups.push(() => tracker.stop());
    const agent = {};
    tracker.track(agent, { scope: 'upstream' });
    publishReuseCheck(agent, true, 'idle');
    publishReuseCheck(agent, false, 'dataPending');
    publishReuseCheck(agent, false, 'dataPending');
    const collected = await collect();
    const check = (result: string) =>
      pointValue(collected, 'sockstate.reuse_check.count', { 'sockstate.scope': 'upstream', 'sockstate.reuse.result': result });
    expect([check('idle'), check('dataPending')]).toEqual([1, 2]);
  });

  it('stop() removes the batch callback: later collections make no sweep', async () => {
    const { provider, collect } = setup();
    const tracker = observeTcpMetrics({ meterProvider: provider });
    const server = net.createServer((s) => s.resume());
    tracker.track(server);
    const port = await listen(server);
    const client = net.connect(port, '127.0.0.1');
    cleanups.push(() => {
      client.destroy();
      server.close();
    });
    await waitFor(() => tracker.size === 1);
    expect((await collect()).get('sockstate.connection.count')!.points.length).toBe(9);
    tracker.stop();
    await collect();
    expect(tracker.size).toBe(0);
    expect(tracker.sweeps).toBe(1);
    expect(caught(() => tracker.track(server))).toMatchObject({ code: 'ERR_SOCKSTATE_TRACKER_STOPPED' });
  });

  it('refuses a bad meterProvider, and says how to install the API when it is missing', async () => {
    expect(caught(() => observeTcpMetrics({ meterProvider: {} as never }))).toMatchObject({
      code: 'ERR_INVALID_ARG_TYPE',
      message: expect.stringContaining('options.meterProvider'),
    });
    expect(caught(() => observeTcpMetrics({ maxSilentMs: -1 }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    const stdout = await withoutPeer('@opentelemetry/api', "require('./lib/metrics/otel.js').observeTcpMetrics()");
    expect(stdout).toBe(
      "ERR_SOCKSTATE_PEER_MISSING sockstate/otel needs the optional peer dependency '@opentelemetry/api', which is not installed: run npm install @opentelemetry/api",
    );
  });
});
