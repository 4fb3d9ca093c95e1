'use strict';
// One function, called many times in a process of its own, on idle
// loopback sockets this process connects to its own server.
//
//   node bench/child.js syscalls <fn> <calls> [sockets]
//       makes <calls> calls and exits; run under `strace -c` (and once with
//       0 calls) it tells how many syscalls each call made.
//   node --expose-gc bench/child.js memory <fn> <calls> [sockets]
//       heap and RSS after a warm-up and after <calls> calls, as JSON.
//
// For probeMany, <calls> counts sockets probed: <calls> / <sockets> calls.
const net = require('node:net');
const { once } = require('node:events');
const subjects = require('./subjects');
const peers = require('./peers');
const { makeToucher } = require('./cost');

const [mode, name, callsArg, socketsArg] = process.argv.slice(2);
const calls = Number(callsArg);
const socketCount = Number(socketsArg ?? 1);

async function setup(count) {
  const server = net.createServer((s) => s.on('error', () => {}));
  server.maxConnections = 20000;
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 });
  await once(server, 'listening');
  const { port } = server.address();
  const sockets = [];
  for (let i = 0; i < count; i += 250) {
    const pending = [];
    for (let j = i; j < Math.min(count, i + 250); j++) {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      sockets.push(s);
      pending.push(once(s, 'connect'));
    }
    await Promise.all(pending);
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  return { server, sockets };
}

function pick(sockets) {
  const s = sockets[0];
  const pm = subjects.probeMany;
  switch (name) {
    case 'connectionState':
      return { step: () => subjects.connectionState(s), per: 1 };
    case 'tcpInfo': {
      const { touch } = makeToucher(subjects.tcpInfo(s));
      return { step: () => touch(subjects.tcpInfo(s)), per: 1 };
    }
    case 'isReusable':
      if (!subjects.isReusable) throw new Error(subjects.absent.isReusable);
      return { step: () => subjects.isReusable(s), per: 1 };
    case 'takeSocketError':
      return { step: () => subjects.takeSocketError(s), per: 1 };
    case 'probeMany':
      if (!pm) throw new Error(subjects.absent.probeMany);
      return { step: () => pm(sockets), per: sockets.length };
    case 'pureJs':
      return { step: () => peers.pureJsAlive(s), per: 1 };
    case 'sockoptSoError': {
      const { soError, error } = peers.loadSockopt();
      if (!soError) throw new Error(error);
      return { step: () => soError(s), per: 1 };
    }
    default:
      throw new Error(`unknown function ${name}`);
  }
}

function memory() {
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss };
}

function fullGc() {
  for (let i = 0; i < 3; i++) global.gc();
}

async function main() {
  const { server, sockets } = await setup(socketCount);
  const { step, per } = pick(sockets);
  const totalSteps = Math.ceil(calls / per);
  if (mode === 'syscalls') {
    for (let i = 0; i < totalSteps; i++) step();
  } else if (mode === 'memory') {
    if (typeof global.gc !== 'function') throw new Error('run with --expose-gc');
    const warm = Math.ceil(Math.min(totalSteps / 10, 100000 / per + 1));
    for (let i = 0; i < warm; i++) step();
    fullGc();
    const before = memory();
    const checkpoints = [];
    const chunk = Math.max(1, Math.ceil(totalSteps / 20));
    const t0 = process.hrtime.bigint();
    let done = 0;
    while (done < totalSteps) {
      const end = Math.min(totalSteps, done + chunk);
      for (let i = done; i < end; i++) step();
      done = end;
      checkpoints.push({ calls: done * per, rss: process.memoryUsage.rss() });
      // Yield between chunks, as a real program would.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    fullGc();
    const after = memory();
    process.stdout.write(
      `${JSON.stringify({
        fn: name,
        calls: totalSteps * per,
        sockets: sockets.length,
        seconds,
        nsPerCall: (seconds * 1e9) / (totalSteps * per),
        before,
        after,
        peakRss: Math.max(before.rss, ...checkpoints.map((c) => c.rss)),
        maxRssKiB: process.resourceUsage().maxRSS,
        checkpoints,
      })}\n`,
    );
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  for (const s of sockets) s.destroy();
  server.close();
}

main().catch((err) => {
  process.stderr.write(`bench/child.js ${name}: ${err.stack}\n`);
  process.exit(1);
});
