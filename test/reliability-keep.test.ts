import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import * as net from 'node:net';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { beforeAll, describe, expect, it } from 'vitest';
import { connectionState, probeMany, takeSocketError, watch } from '../src/index';
import { native } from '../src/probe/native';
import { caught } from './helpers/errors';
import { listen, perTestCleanup, waitFor } from './helpers/sockets';

const root = path.join(__dirname, '..');
const { cleanups, pair } = perTestCleanup();

beforeAll(() => {
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'pipe',
  });
}, 120_000);

function fdOf(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

// A worker that loads the package, makes its own loopback pair, probes it
// `rounds` times through every synchronous call, then sees the peer close.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const s = require(workerData.lib);
const server = net.createServer((peer) => {
  if (client.connecting) client.once('connect', () => run(peer));
  else run(peer);
});
function run(peer) {
  const counts = { open: 0, reusable: 0, swept: 0, rtt: 0 };
  for (let i = 0; i < workerData.rounds; i++) {
    if (s.connectionState(client).status === 'open') counts.open++;
    if (s.isReusable(client)) counts.reusable++;
    if (s.probeMany([client, peer]).every((e) => e.status === 'open')) counts.swept++;
    if (s.tcpInfo(client).rtt >= 0) counts.rtt++;
  }
  peer.end();
  const poll = setInterval(() => {
    const st = s.connectionState(client);
    if (st.status !== 'peerClosed') return;
    clearInterval(poll);
    parentPort.postMessage({ counts, final: st.status, threadId: require('node:worker_threads').threadId });
    client.destroy();
    server.close();
  }, 1);
}
let client;
server.listen(0, '127.0.0.1', () => {
  client = net.connect({ port: server.address().port, host: '127.0.0.1', allowHalfOpen: true });
  client.on('data', () => {});
});
`;

// A worker that probes in a tight loop until it is terminated.
const SPINNER = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const s = require(workerData.lib);
const server = net.createServer(() => {
  parentPort.postMessage('spinning');
  for (;;) { s.connectionState(client); s.probeMany([client, client]); s.tcpInfo(client); }
});
let client;
server.listen(0, '127.0.0.1', () => { client = net.connect(server.address().port, '127.0.0.1'); });
`;

describe.runIf(native !== null)('worker threads', () => {
  it('four workers probe their own sockets at once, each answer exact', async () => {
    const rounds = 2000;
    const lib = path.join(root, 'lib', 'index.js');
    const workers = Array.from({ length: 4 }, () => new Worker(WORKER, { eval: true, execArgv: [], workerData: { lib, rounds } }));
    cleanups.push(() => workers.forEach((w) => void w.terminate()));
    const exits = workers.map((w) => once(w, 'exit'));
    const results = (await Promise.all(workers.map((w) => once(w, 'message')))).map(([m]) => m as {
      counts: Record<string, number>;
      final: string;
      threadId: number;
    });
    expect(new Set(results.map((r) => r.threadId)).size).toBe(4);
    for (const r of results) {
      expect(r.counts).toEqual({ open: rounds, reusable: rounds, swept: rounds, rtt: rounds });
      expect(r.final).toBe('peerClosed');
    }
    // Each exits by itself once its sockets and server are closed.
    expect((await Promise.all(exits)).map(([code]) => code as number)).toEqual([0, 0, 0, 0]);
  });

  it('a worker terminated in the middle of probing: the main thread goes on unharmed', async () => {
    const { client } = await pair();
    const lib = path.join(root, 'lib', 'index.js');
    for (let i = 0; i < 3; i++) {
      const worker = new Worker(SPINNER, { eval: true, execArgv: [], workerData: { lib } });
      const [message] = await once(worker, 'message');
      expect(message).toBe('spinning');
      expect(await worker.terminate()).toBe(1);
    }
    expect(connectionState(client)).toMatchObject({ status: 'open', source: 'kernel' });
    expect(probeMany([client])[0]).toEqual(connectionState(client));
  });
});

describe.runIf(native !== null)('fd reuse: an old socket object never reports the socket that now has its number', () => {
  it('connectionState, probeMany, takeSocketError and watch on the destroyed socket', async () => {
    const server = net.createServer({ allowHalfOpen: true });
    const port = await listen(server);
    cleanups.push(() => server.close());
    const old = net.connect({ port, host: '127.0.0.1' });
    await once(old, 'connect');
    const fd = fdOf(old);
    old.destroy();
    // The kernel hands out the lowest free number: the next socket gets it.
    const fresh = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    cleanups.push(() => fresh.destroy());
    await once(fresh, 'connect');
    expect(fdOf(fresh)).toBe(fd);
    expect(connectionState(old)).toMatchObject({ status: 'closed', source: 'flags', tcpState: null });
    const [a, b] = probeMany([old, fresh]);
    expect(a).toMatchObject({ status: 'closed', source: 'flags' });
    expect(b).toMatchObject({ status: 'open', source: 'kernel', tcpState: 'ESTABLISHED' });
    expect(caught(() => takeSocketError(old))).toMatchObject({ code: 'ERR_SOCKSTATE_NO_FD' });
    const w = watch(old, { intervalMs: 1 });
    const [end] = (await once(w, 'end')) as [{ reason: string }];
    expect(end.reason).toBe('closed');
    // The new socket was not touched by any of it.
    await waitFor(() => connectionState(fresh).status === 'open', 1000, 'open');
    expect(fresh.destroyed).toBe(false);
  });
});
