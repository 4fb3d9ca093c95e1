'use strict';
// Node's HTTP agents on both reuse paths, stock next to sockstate's:
//  - the queued hand-off race (maxSockets 1, two requests at once, the
//    server closes right after answering, the loop busy 300 ms): failures;
//  - what the guard costs per keep-alive request on loopback, on the free
//    pool path (one request at a time) and on the queued hand-off path
//    (8 requests at once over one socket), as a ratio to the stock agent,
//    measured side by side in interleaved blocks.
//
//   node bench/agent-handoff.js [--quick]
//
// Servers run in child processes (this file with 'server'). Needs the
// package built (tsc). Writes bench/results-agent-handoff.json.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { performance } = require('node:perf_hooks');

if (process.argv[2] === 'server') {
  const closeAfter = process.argv[3] === 'close';
  const server = http.createServer((req, res) => res.end('ok', closeAfter ? () => req.socket.end() : undefined));
  server.keepAliveTimeout = 600_000;
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
  process.stdin.on('end', () => process.exit()).resume();
  return;
}

const { Agent, connectionState } = require('../lib/index.js');

const quick = process.argv.includes('--quick');
const RACE_TRIALS = quick ? 5 : 20;
const BLOCKS = quick ? 6 : 20;
const PER_BLOCK = quick ? 300 : 1000;
const QUEUED = 8;

function startServer(mode) {
  const child = spawn(process.execPath, [__filename, 'server', mode], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve) => {
    child.stdout.once('data', (line) => resolve({ port: Number(line), stop: () => child.stdin.end() }));
  });
}

function get(port, agent) {
  let req;
  const done = new Promise((resolve) => {
    req = http.get({ host: '127.0.0.1', port, agent }, (res) => {
      res.resume().on('end', () => resolve(true));
    });
    req.on('error', () => resolve(false));
  });
  return { req, done };
}

async function raceTrial(port, agent) {
  const first = get(port, agent);
  const second = get(port, agent);
  first.req.once('finish', () => {
    const until = Date.now() + 300;
    while (Date.now() < until || connectionState(first.req.socket).status !== 'peerClosed');
  });
  const ok = [await first.done, await second.done];
  agent.destroy();
  return ok[1] ? 0 : 1;
}

async function block(port, agent, n, concurrent) {
  const t0 = performance.now();
  for (let done = 0; done < n; done += concurrent) {
    await Promise.all(Array.from({ length: concurrent }, () => get(port, agent).done));
  }
  return (performance.now() - t0) / n;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const results = { node: process.version, quick, race: {}, cost: {} };
  const closing = await startServer('close');
  try {
    for (const [name, make] of [
      ['stock http.Agent', () => new http.Agent({ keepAlive: true, maxSockets: 1 })],
      ['sockstate Agent', () => new Agent({ maxSockets: 1 })],
    ]) {
      let failed = 0;
      for (let i = 0; i < RACE_TRIALS; i++) failed += await raceTrial(closing.port, make());
      results.race[name] = { trials: RACE_TRIALS, failed };
    }
  } finally {
    closing.stop();
  }

  const keeping = await startServer('keep');
  try {
    for (const [path_, concurrent, maxSockets] of [['free pool', 1, Infinity], ['queued hand-off', QUEUED, 1]]) {
      const contenders = {
        'stock http.Agent': new http.Agent({ keepAlive: true, maxSockets }),
        'sockstate Agent': new Agent({ maxSockets }),
        'sockstate Agent, reuse: { maxSilentMs }': new Agent({ maxSockets, reuse: { maxSilentMs: 60_000 } }),
      };
      const times = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
      for (const agent of Object.values(contenders)) await block(keeping.port, agent, 100, concurrent); // warm-up
      for (let b = 0; b < BLOCKS; b++) {
        // Interleaved, in a rotating order, so drift hits every contender alike.
        const names = Object.keys(contenders);
        for (let i = 0; i < names.length; i++) {
          const name = names[(b + i) % names.length];
          times[name].push(await block(keeping.port, contenders[name], PER_BLOCK, concurrent));
        }
      }
      const stock = median(times['stock http.Agent']);
      results.cost[path_] = Object.fromEntries(
        Object.entries(times).map(([name, xs]) => [name, { usPerRequest: +(median(xs) * 1000).toFixed(1), ratio: +(median(xs) / stock).toFixed(3) }]),
      );
      for (const [name, agent] of Object.entries(contenders)) {
        if (agent.staleSocketsDestroyed) throw new Error(`${name} evicted ${agent.staleSocketsDestroyed} healthy sockets`);
        agent.destroy();
      }
    }
  } finally {
    keeping.stop();
  }

  console.log(`Node ${process.version}${quick ? ' (--quick)' : ''}`);
  console.log(`\nQueued hand-off race (maxSockets 1, server closes after answering, loop busy 300 ms):`);
  console.log('| agent | failed |\n|---|---|');
  for (const [name, r] of Object.entries(results.race)) console.log(`| ${name} | ${r.failed} of ${r.trials} |`);
  console.log(`\nCost per keep-alive request on loopback (median of ${BLOCKS} interleaved blocks of ${PER_BLOCK}):`);
  console.log('| path | agent | µs per request | ratio to stock |\n|---|---|---|---|');
  for (const [p, byAgent] of Object.entries(results.cost)) {
    for (const [name, r] of Object.entries(byAgent)) console.log(`| ${p} | ${name} | ${r.usPerRequest} | ${r.ratio.toFixed(3)}× |`);
  }
  fs.writeFileSync(path.join(__dirname, 'results-agent-handoff.json'), `${JSON.stringify(results, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
