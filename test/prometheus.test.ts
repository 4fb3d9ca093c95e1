import * as http from 'node:http';
import * as net from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectTcpMetrics } from '../src/metrics/prometheus';
import { serverAvailable } from './helpers/programs';
import { prometheusProgram, type PrometheusServer, startPrometheus } from './helpers/prometheus';
import { listen, waitFor } from './helpers/sockets';

const available = serverAvailable('Prometheus', prometheusProgram, 'apt-get install prometheus');

describe.runIf(available)('sockstate/prometheus scraped by a real Prometheus', () => {
  const registry = new Registry();
  const tracker = collectTcpMetrics({ register: registry, labels: { service: 'test' } });
  const app = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.resume();
  });
  const metricsServer = http.createServer((_req, res) => {
    registry.metrics().then(
      (body) => {
        res.setHeader('Content-Type', registry.contentType);
        res.end(body);
      },
      (err: Error) => {
        res.statusCode = 500;
        res.end(String(err));
      },
    );
  });
  const clients: net.Socket[] = [];
  let prometheus: PrometheusServer | null = null;

  beforeAll(async () => {
    tracker.track(app, { scope: 'app' });
    const appPort = await listen(app);
    const metricsPort = await listen(metricsServer);
    for (let i = 0; i < 5; i++) {
      const c = net.connect({ port: appPort, host: '127.0.0.1', allowHalfOpen: true });
      c.on('error', () => {});
      await new Promise((resolve) => c.once('connect', resolve));
      clients.push(c);
    }
    await waitFor(() => tracker.size === 5);
    // Two peers leave; the application never closes its ends: CLOSE_WAIT.
    clients[0]!.end();
    clients[1]!.end();
    prometheus = await startPrometheus([`127.0.0.1:${metricsPort}`], 1);
  }, 30_000);

  afterAll(async () => {
    await prometheus?.stop();
    tracker.stop();
    clients.forEach((c) => c.destroy());
    app.close();
    metricsServer.close();
  });

  it('stores the connection counts by status and the RTT histogram', async () => {
    const p = prometheus!;
    const count = async (status: string): Promise<number | null> => {
      const result = await p.query(`sockstate_connections{scope="app",role="server",status="${status}",service="test"}`);
      return result.length === 1 ? Number(result[0]!.value[1]) : null;
    };
    const deadline = Date.now() + 20_000;
    while ((await count('peerClosed')) !== 2) {
      if (Date.now() > deadline) throw new Error('Prometheus never stored peerClosed = 2');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(await count('open')).toBe(3);
    expect(await count('reset')).toBe(0);

    const buckets = await p.query('sockstate_tcp_rtt_seconds_bucket{scope="app"}');
    expect(buckets.map((b) => b.metric.le)).toContain('+Inf');
    expect(buckets).toHaveLength(16);
    const observed = await p.query('sockstate_tcp_rtt_seconds_count{scope="app"}');
    expect(Number(observed[0]!.value[1])).toBeGreaterThanOrEqual(5);
    // On loopback the smoothed RTT is far below a second.
    const aboveOneSecond = await p.query(
      'sockstate_tcp_rtt_seconds_count{scope="app"} - ignoring(le) sockstate_tcp_rtt_seconds_bucket{scope="app",le="1"}',
    );
    expect(aboveOneSecond.map((r) => r.value[1])).toEqual(['0']);
    const up = await p.query('up{job="sockstate-test"}');
    expect(up.map((r) => r.value[1])).toEqual(['1']);
  }, 30_000);
});
