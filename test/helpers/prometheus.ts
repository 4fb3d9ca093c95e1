import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { findProgram } from './programs';
import { sleep } from './sockets';

/** The Prometheus binary (Debian's `prometheus` package), or null. */
export const prometheusProgram = findProgram(['/usr/bin/prometheus', '/usr/local/bin/prometheus']);

/** A Prometheus server started by a test; {@link stop} kills it and removes its directory. */
export interface PrometheusServer {
  /** Base URL of its HTTP API on loopback, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** Runs an instant query; resolves with the result vector. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** Stops the server and removes its config and data. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function getJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          try {
            resolve(JSON.parse(body));
          } catch (err) {
            reject(new Error(`${url}: HTTP ${res.statusCode}: ${body.slice(0, 200)} (${String(err)})`));
          }
        });
      })
      .on('error', reject);
  });
}

/**
 * Starts Prometheus with a temporary config and data directory on a free
 * loopback port, scraping `targets` (`host:port` on loopback) every
 * `intervalS` seconds at `/metrics`. Resolves once its API answers.
 */
export async function startPrometheus(targets: readonly string[], intervalS = 1): Promise<PrometheusServer> {
  if (prometheusProgram === null) throw new Error('prometheus is not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-prometheus-'));
  const config = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(
    config,
    [
      'global:',
      `  scrape_interval: ${intervalS}s`,
      `  scrape_timeout: ${intervalS}s`,
      'scrape_configs:',
      '  - job_name: sockstate-test',
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    prometheusProgram,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = once(child, 'exit');
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited (${child.exitCode}): ${stderr}`);
    }
    try {
      await getJson(`${url}/api/v1/status/buildinfo`);
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`prometheus did not answer on ${url}: ${String(err)}; ${stderr}`);
      }
      await sleep(100);
    }
  }
  return {
    url,
    async query(expr) {
      const body = (await getJson(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`)) as {
        status: string;
        data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
        error?: string;
      };
      if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error ?? body.status}`);
      return body.data!.result;
    },
    stop,
  };
}
