'use strict';
// `npm run bench`: sockstate against the syscall floor, pure-JS detection
// and the packages a user would pick instead. Prints tables and writes the
// same figures to bench/results.json. Loopback only.
//
//   node bench/run.js [--quick] [--skip-memory] [--out <file>]
//
// --quick: fewer rounds and calls (a smoke run; figures are noisier).
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { once } = require('node:events');
const { LineChild, startFixture, machine, round } = require('./util');
const cost = require('./cost');
const peers = require('./peers');
const subjects = require('./subjects');
const { countSyscalls } = require('./syscalls');
const { keepAliveRace, closeDetection } = require('./detection');
const { measureMemory } = require('./memory');
const report = require('./report');

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const skipMemory = argv.includes('--skip-memory');
const outArg = argv.indexOf('--out');
const outFile = outArg >= 0 ? path.resolve(argv[outArg + 1]) : path.join(__dirname, 'results.json');

const MANY = [1000, 10000];
const config = quick
  ? { rounds: 5, warmMs: 100, batchMs: 25, floorIters: 20000, memoryCalls: 1_000_000, blockedTrials: 5, jitterTrials: 30, closeTrials: 6, pausedTrials: 2 }
  : { rounds: 15, warmMs: 150, batchMs: 40, floorIters: 40000, memoryCalls: 10_000_000, blockedTrials: 20, jitterTrials: 200, closeTrials: 20, pausedTrials: 5 };

const started = Date.now();
const log = (msg) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);

function buildFloor() {
  const dir = path.join(__dirname, '.build');
  fs.mkdirSync(dir, { recursive: true });
  const exe = path.join(dir, 'floor');
  const cc = process.env.CC || 'cc';
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-pthread', '-o', exe, path.join(__dirname, 'floor.c')], { stdio: 'inherit' });
  const version = execFileSync(cc, ['--version'], { encoding: 'utf8' }).split('\n')[0];
  return { exe, cc: `${cc} (${version}) -O2` };
}

async function connectedPair() {
  const server = net.createServer((s) => s.on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const client = net.connect({ port: server.address().port, host: '127.0.0.1' });
  client.on('error', () => {});
  await once(client, 'connect');
  const [peer] = await accepted;
  return { client, peer, server };
}

function contendersFor({ socket, many, koffi, sockopt }) {
  const list = [];
  const { native } = subjects;
  const add = (c) => list.push({ perCall: 1, arg: socket, ...c });

  // sockstate
  add({ id: 'connectionState', label: 'connectionState()', group: 'sockstate', floor: 'tcpInfoPoll', fn: subjects.connectionState });
  const tcpTouch = cost.makeToucher(subjects.tcpInfo(socket));
  add({
    id: 'tcpInfo',
    label: `tcpInfo(), all ${tcpTouch.fields} fields read`,
    group: 'sockstate',
    floor: 'tcpInfoFull',
    fn: (s) => {
      const o = subjects.tcpInfo(s);
      tcpTouch.touch(o);
      return o;
    },
  });
  if (subjects.isReusable) add({ id: 'isReusable', label: 'isReusable()', group: 'sockstate', floor: 'poll', fn: subjects.isReusable });
  add({ id: 'takeSocketError', label: 'takeSocketError()', group: 'sockstate', floor: 'soError', fn: subjects.takeSocketError });
  if (subjects.probeMany) {
    for (const n of MANY) {
      add({ id: `probeMany${n}`, label: `probeMany(), ${n} sockets, per socket`, group: 'sockstate', floor: `many${n}.perSocket`, perCall: n, arg: many.slice(0, n), fn: subjects.probeMany });
    }
  }
  for (const [name, fn] of Object.entries(subjects.probeManyVariants)) {
    // A variant's signature is its own: try (targets) and (targets, out).
    for (const n of MANY) {
      const targets = many.slice(0, n);
      let call;
      try {
        fn(targets);
        call = (t) => fn(t);
      } catch {
        continue;
      }
      add({ id: `${name}${n}`, label: `${name}(), ${n} sockets, per socket`, group: 'sockstate', floor: `many${n}.perSocket`, perCall: n, arg: targets, fn: call });
    }
  }

  // pure JS
  add({ id: 'pureJs', label: 'destroyed/readyState/readableEnded/writable', group: 'pure JS', floor: null, fn: peers.pureJsAlive });

  // peers
  if (sockopt.soError) add({ id: 'sockoptSoError', label: 'sockopt getsockopt(SO_ERROR)', group: 'peer', floor: 'soError', fn: sockopt.soError });
  if (koffi.tcpInfo) {
    const kTouch = cost.makeToucher(koffi.tcpInfo(socket));
    add({
      id: 'koffiTcpInfo',
      label: `koffi getsockopt(TCP_INFO) + JS decode, ${kTouch.fields} fields read`,
      group: 'peer',
      floor: 'tcpInfoFull',
      fn: (s) => {
        const o = koffi.tcpInfo(s);
        kTouch.touch(o);
        return o;
      },
    });
    add({ id: 'koffiState', label: 'koffi TCP_INFO + poll + verdict', group: 'peer', floor: 'tcpInfoPoll', fn: koffi.state });
    add({ id: 'koffiPoll', label: 'koffi poll', group: 'peer', floor: 'poll', fn: koffi.reusable });
    add({ id: 'koffiSoError', label: 'koffi getsockopt(SO_ERROR)', group: 'peer', floor: 'soError', fn: koffi.soError });
  }

  // Where sockstate's time goes: the raw binding without the TS layer.
  if (native) {
    const fd = socket._handle.fd;
    const probeOut = new Int32Array(native.probeSlots.COUNT);
    const infoBuf = new Uint8Array(native.tcpInfoLayout.bufferSize + 8);
    const { targetFd } = require('../lib/probe/target.js');
    add({ id: 'rawProbe', label: 'binding.probe(fd, out)', group: 'raw binding', floor: 'tcpInfoPoll', arg: fd, fn: (f) => native.probe(f, probeOut) });
    add({ id: 'rawTcpInfo', label: 'binding.tcpInfo(fd, buf), no decode', group: 'raw binding', floor: 'tcpInfoFull', arg: fd, fn: (f) => native.tcpInfo(f, infoBuf) });
    add({ id: 'rawPoll', label: 'binding.poll(fd)', group: 'raw binding', floor: 'poll', arg: fd, fn: native.poll });
    add({ id: 'rawSoError', label: 'binding.soError(fd)', group: 'raw binding', floor: 'soError', arg: fd, fn: native.soError });
    const n = MANY[MANY.length - 1];
    const fds = Int32Array.from(many.slice(0, n), (s) => s._handle.fd);
    const out = new Int32Array(n * native.probeSlots.COUNT);
    add({ id: `rawProbeMany${n}`, label: `binding.probeMany(fds, out), ${n} fds, per socket`, group: 'raw binding', floor: `many${n}.perSocket`, perCall: n, arg: fds, fn: (f) => native.probeMany(f, out) });
    const sameFd = new Int32Array(1000).fill(fd);
    const sameOut = new Int32Array(1000 * native.probeSlots.COUNT);
    add({ id: 'rawProbeSameFd', label: 'binding.probeMany(1,000 x the same fd), per probe', group: 'raw binding', floor: 'tcpInfoPoll', perCall: 1000, arg: sameFd, fn: (f) => native.probeMany(f, sameOut) });
    add({ id: 'targetFd', label: 'targetFd(socket) alone (reads _handle.fd)', group: 'raw binding', floor: null, fn: (s) => targetFd(s, 'target') });
  }
  return list;
}

async function main() {
  if (!subjects.supported) throw new Error(`sockstate's native probe is not loaded: ${subjects.sockstate.unsupportedReason}`);
  const results = {
    generatedAt: new Date().toISOString(),
    command: `node bench/run.js${argv.length ? ` ${argv.join(' ')}` : ''}`,
    quick,
    machine: machine(),
    config,
    loaded: { found: subjects.found, missing: subjects.absent },
    peers: {},
  };
  log(`machine: ${JSON.stringify(results.machine)}`);
  for (const [k, v] of Object.entries(subjects.absent)) log(`missing: ${k}: ${v}`);

  const floorBuild = buildFloor();
  results.floorBuild = floorBuild.cc;
  log(`floor built with ${floorBuild.cc}`);

  // ---- cost per call
  const holderNode = await startFixture('holder.js');
  const holderFloor = await startFixture('holder.js');
  const maxMany = MANY[MANY.length - 1];
  const floor = new LineChild(floorBuild.exe, [holderFloor.first, String(maxMany)]);
  const many = await cost.connectMany(Number(holderNode.first), maxMany);
  const pair = await connectedPair();
  const floorReady = JSON.parse(await floor.next());
  if (floorReady.many !== maxMany) throw new Error(`floor: ${JSON.stringify(floorReady)}`);
  await new Promise((resolve) => setTimeout(resolve, 200));
  log(`cost: ${maxMany} sockets connected on each side`);

  const sockopt = peers.loadSockopt();
  const koffi = peers.loadKoffi(subjects.native.tcpInfoLayout);
  results.peers = {
    sockopt: sockopt.soError ? { version: require('sockopt/package.json').version } : { error: sockopt.error },
    koffi: koffi.tcpInfo ? { version: koffi.version } : { error: koffi.error },
  };
  const contenders = contendersFor({ socket: pair.client, many, koffi, sockopt });
  results.cost = await cost.measure({
    contenders,
    floor,
    floorCommands: {
      single: `single ${config.floorIters}`,
      ...Object.fromEntries(MANY.map((n) => [`many${n}`, `many ${n} ${Math.max(1, Math.round((config.floorIters * 1.5) / n))}`])),
    },
    rounds: config.rounds,
    warmMs: config.warmMs,
    batchMs: config.batchMs,
    log,
  });
  // The socket must still be idle and open, or the figures mean nothing.
  const after = subjects.connectionState(pair.client);
  results.cost.socketAfter = after.status;
  if (after.status !== 'open') throw new Error(`the measured socket is ${after.status}, not open`);
  floor.send('quit');
  await floor.close();
  for (const s of many) s.destroy();
  pair.client.destroy();
  pair.peer.destroy();
  pair.server.close();
  await holderNode.child.close();
  await holderFloor.child.close();

  // ---- syscalls per call
  const traced = [{ fn: 'connectionState' }, { fn: 'tcpInfo' }, { fn: 'takeSocketError' }, { fn: 'pureJs' }, { fn: 'sockoptSoError' }];
  if (subjects.isReusable) traced.splice(2, 0, { fn: 'isReusable' });
  if (subjects.probeMany) traced.push({ fn: 'probeMany', sockets: 100 });
  results.syscalls = countSyscalls(traced, { calls: quick ? 500 : 2000, log });

  // ---- detection
  results.race = await keepAliveRace({ Agent: subjects.Agent, blockedTrials: config.blockedTrials, jitterTrials: config.jitterTrials, idleMs: 100, log });
  results.close = await closeDetection({ connectionState: subjects.connectionState, trials: config.closeTrials, pausedTrials: config.pausedTrials, waitMs: 500, log });

  // ---- memory
  if (!skipMemory) {
    const jobs = [
      { fn: 'connectionState', calls: config.memoryCalls },
      { fn: 'tcpInfo', calls: config.memoryCalls },
      { fn: 'isReusable', calls: config.memoryCalls },
      { fn: 'takeSocketError', calls: config.memoryCalls },
      { fn: 'probeMany', calls: config.memoryCalls, sockets: 1000 },
      // A peer for scale, fewer calls: its addon mallocs per call.
      { fn: 'sockoptSoError', calls: Math.round(config.memoryCalls / 5) },
    ].filter((j) => (j.fn === 'isReusable' ? subjects.isReusable : j.fn === 'probeMany' ? subjects.probeMany : j.fn === 'sockoptSoError' ? sockopt.soError : true));
    results.memory = await measureMemory(jobs, log);
  }

  results.targets = report.verdicts(results);
  results.wallSeconds = round((Date.now() - started) / 1000, 1);
  fs.writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${report.text(results)}\n`);
  log(`wrote ${path.relative(process.cwd(), outFile)}; wall time ${results.wallSeconds} s`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.stack}\n`);
  process.exit(1);
});
