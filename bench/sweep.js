'use strict';
// The metrics sweep at the scale of a busy server: for 1,000, 5,000 and
// 15,000 tracked connections, how long a scrape holds the event loop, what
// a sweep costs in CPU per connection next to the synchronous probeMany and
// the per-fd syscall floor, and what tracking a connection costs in memory.
// Loopback only; the peers of the tracked sockets live in a child process
// (bench/fixtures/holder.js), the floor's in another.
//
//   node bench/sweep.js [--quick] [--out <file>]
//
// Prints a table and writes bench/results-sweep.json.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');
const { LineChild, startFixture, machine, round, summary, table } = require('./util');
const { connectMany } = require('./cost');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const outArg = argv.indexOf('--out');
const outFile = outArg >= 0 ? path.resolve(argv[outArg + 1]) : path.join(__dirname, 'results-sweep.json');
const SIZES = [1000, 5000, 15000];
const config = quick ? { scrapes: 5, cpuSweeps: 5 } : { scrapes: 20, cpuSweeps: 20 };

const lib = path.join(__dirname, '..', 'lib');
const { probeMany, probeManyAsync } = require(path.join(lib, 'index.js'));
const { collectTcpMetrics } = require(path.join(lib, 'metrics', 'prometheus.js'));
const { Registry } = require('prom-client');

const started = Date.now();
const log = (msg) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);

function buildFloor() {
  const dir = path.join(__dirname, '.build');
  fs.mkdirSync(dir, { recursive: true });
  const exe = path.join(dir, 'floor');
  const cc = process.env.CC || 'cc';
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-pthread', '-o', exe, path.join(__dirname, 'floor.c')], { stdio: 'inherit' });
  return exe;
}

const threadCpu = typeof process.threadCpuUsage === 'function' ? () => {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
} : null;

/**
 * Runs `work` while a 1 ms interval timer ticks. Resolves with the longest
 * gap between ticks (ms): the event loop's longest stall, as a user sees
 * it; on a loaded machine it also holds the time the thread waited for a
 * CPU. Where Node can read the main thread's own CPU time (22.x and
 * later), also the main thread's CPU for the whole of `work` (ms), and how
 * many timer ticks ran during it (turns of the event loop the work left
 * free). The kernel updates a running thread's CPU time only at ticks and
 * switches, so it is read over the whole work, not between two ticks.
 */
async function longestGap(work) {
  let last = performance.now();
  let longest = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    ticks++;
  }, 1);
  await new Promise((resolve) => setTimeout(resolve, 5));
  last = performance.now();
  longest = 0;
  ticks = 0;
  const cpu0 = threadCpu?.() ?? NaN;
  await work();
  const cpu = (threadCpu?.() ?? NaN) - cpu0;
  const during = ticks;
  // One more tick so a stall at the very end is seen.
  await new Promise((resolve) => setTimeout(resolve, 2));
  clearInterval(timer);
  return { wall: longest, cpu, ticks: during };
}

/** CPU (user + system, every thread of the process) per connection of one call of `fn`, in ns. */
async function cpuPerConnection(fn, n, calls) {
  await fn();
  const before = process.cpuUsage();
  for (let i = 0; i < calls; i++) await fn();
  const used = process.cpuUsage(before);
  return ((used.user + used.system) * 1000) / (calls * n);
}

function memoryNow() {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function main() {
  const results = { quick, machine: machine(), config, sizes: {} };
  log(`machine: ${JSON.stringify(results.machine)}`);
  const floorExe = buildFloor();
  const maxN = SIZES[SIZES.length - 1];
  const holder = await startFixture('holder.js');
  const holderFloor = await startFixture('holder.js');
  const floor = new LineChild(floorExe, [holderFloor.first, String(maxN)]);
  const floorReady = JSON.parse(await floor.next());
  if (floorReady.many !== maxN) throw new Error(`floor: ${JSON.stringify(floorReady)}`);
  const sockets = await connectMany(Number(holder.first), maxN);
  log(`${maxN} sockets connected (peers in a child process), floor ready`);

  const rows = [];
  for (const n of SIZES) {
    const targets = sockets.slice(0, n);
    const entry = {};

    // Memory per tracked connection: the tracker's columns, hooks and maps.
    const base = memoryNow();
    const registry = new Registry();
    const tracker = collectTcpMetrics({ register: registry });
    for (const s of targets) tracker.track(s, { scope: 'bench' });
    await registry.metrics();
    entry.bytesPerConnection = (memoryNow() - base) / n;
    if (tracker.size !== n) throw new Error(`tracked ${tracker.size} of ${n}`);

    // Event-loop stall per scrape (a whole registry.metrics()), and the
    // same for one synchronous probeMany of the same sockets.
    const stalls = [];
    const cpuPerScrape = [];
    const ticks = [];
    const sweepsBefore = tracker.sweeps;
    for (let i = 0; i < config.scrapes; i++) {
      let text = '';
      const gap = await longestGap(async () => (text = await registry.metrics()));
      stalls.push(gap.wall);
      cpuPerScrape.push(gap.cpu);
      ticks.push(gap.ticks);
      if (!text.includes(`sockstate_connections{role="client",scope="bench",status="open"} ${n}`)) {
        throw new Error(`scrape ${i}: not ${n} open connections`);
      }
    }
    if (tracker.sweeps - sweepsBefore !== config.scrapes) throw new Error('one sweep per scrape expected');
    entry.stallMs = summary(stalls);
    entry.mainThreadCpuMsPerScrape = summary(cpuPerScrape);
    entry.timerTicksDuringScrape = summary(ticks);
    // The same timer over idle windows as long as a scrape: what this
    // machine's load alone does to a 1 ms timer.
    const scrapeMs = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await registry.metrics();
      scrapeMs.push(performance.now() - t0);
    }
    const window = summary(scrapeMs).median;
    const idle = [];
    for (let i = 0; i < config.scrapes; i++) idle.push((await longestGap(() => new Promise((r) => setTimeout(r, window)))).wall);
    entry.idleGapMs = summary(idle);
    entry.scrapeWallMs = window;

    const syncStalls = [];
    for (let i = 0; i < Math.min(5, config.scrapes); i++) syncStalls.push((await longestGap(async () => probeMany(targets))).wall);
    entry.syncProbeManyStallMs = summary(syncStalls);

    // CPU per connection per sweep, every thread counted.
    entry.cpuNs = {
      // One metric's get(): one sweep and the sums, without the text format.
      trackerSweep: await cpuPerConnection(() => registry.getSingleMetric('sockstate_connections').get(), n, config.cpuSweeps),
      probeManyAsync: await cpuPerConnection(() => probeManyAsync(targets), n, config.cpuSweeps),
      probeMany: await cpuPerConnection(async () => probeMany(targets), n, config.cpuSweeps),
    };
    floor.send(`many ${n} ${Math.max(2, Math.round(60000 / n))}`);
    const floorMany = JSON.parse(await floor.next());
    // Node's threads share the fd table: the multi-threaded figure is the floor.
    entry.cpuNs.floor = floorMany.perSocketMt;
    tracker.stop();

    results.sizes[n] = entry;
    rows.push([
      n.toLocaleString('en-US'),
      round(entry.stallMs.median, 2),
      round(entry.stallMs.max, 2),
      round(entry.idleGapMs.median, 2),
      round(entry.mainThreadCpuMsPerScrape.median, 2),
      round(entry.timerTicksDuringScrape.median, 0),
      round(entry.syncProbeManyStallMs.median, 2),
      round(entry.cpuNs.trackerSweep, 0),
      round(entry.cpuNs.probeMany, 0),
      round(entry.cpuNs.floor, 0),
      `${round(entry.cpuNs.trackerSweep / entry.cpuNs.probeMany, 2)}x`,
      `${round(entry.cpuNs.trackerSweep / entry.cpuNs.floor, 2)}x`,
      round(entry.cpuNs.probeManyAsync, 0),
      round(entry.bytesPerConnection, 0),
    ]);
    log(`${n}: ${JSON.stringify(entry)}`);
  }

  floor.send('quit');
  await floor.close();
  for (const s of sockets) s.destroy();
  await holder.child.close();
  await holderFloor.child.close();

  const header = [
    'connections',
    'scrape stall ms (median)',
    'stall ms (max)',
    'idle gap ms (median)',
    'main-thread CPU ms/scrape',
    '1 ms ticks during scrape',
    'sync probeMany stall ms',
    'sweep CPU ns/conn',
    'probeMany ns/conn',
    'floor ns/conn',
    'vs probeMany',
    'vs floor',
    'probeManyAsync ns/conn',
    'bytes/tracked conn',
  ];
  console.log(table(header, rows));
  console.log(`load average at the end: ${require('node:os').loadavg().map((x) => round(x, 2)).join(' ')} on ${require('node:os').cpus().length} cores`);
  results.table = { header, rows };
  fs.writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote ${path.relative(process.cwd(), outFile)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
