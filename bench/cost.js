'use strict';
// Cost per call: every contender and the C floor, measured in interleaved
// rounds in one run so that machine noise (a shared 2-core box) hits them
// alike. Each round runs the floor program once and every JS contender for
// about `batchMs`, in an order rotated per round; ratios are taken per
// round (contender / floor of the same round), then the median.
const net = require('node:net');
const { once } = require('node:events');
const { summary, round } = require('./util');

/** A fresh monomorphic loop per contender, so no call site is shared. */
function makeRunner(fn, arg) {
  const box = { v: undefined };
  const loop = new Function('fn', 'arg', 'box', 'n', 'for (let i = 0; i < n; i++) box.v = fn(arg); return box.v;');
  return (n) => loop(fn, arg, box, n);
}

/**
 * A function that reads every property of an object shaped like `sample`
 * and folds them into a number, so no field can be skipped.
 */
function makeToucher(sample) {
  const parts = Object.keys(sample).map((k) => {
    const v = sample[k];
    const ref = `o[${JSON.stringify(k)}]`;
    if (typeof v === 'string') return `a += ${ref}.length;`;
    if (typeof v === 'bigint') return `a += ${ref} === undefined ? 0 : ${ref} > 0n ? 1 : 2;`;
    if (typeof v === 'boolean') return `a += ${ref} ? 1 : 0;`;
    if (v === undefined || v === null) return `a += ${ref} == null ? 0 : 1;`;
    return `a += ${ref};`;
  });
  const touch = new Function('o', `let a = 0; ${parts.join(' ')} return a;`);
  return { touch, fields: parts.length };
}

async function connectMany(port, count) {
  const sockets = [];
  const batch = 500;
  for (let i = 0; i < count; i += batch) {
    const pending = [];
    for (let j = i; j < Math.min(count, i + batch); j++) {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      sockets.push(s);
      pending.push(once(s, 'connect'));
    }
    await Promise.all(pending);
  }
  return sockets;
}

/** Calls `runner` until warm, then returns the iteration count for `batchMs`. */
function calibrate(runner, warmMs, batchMs) {
  let n = 1;
  const start = performance.now();
  let perCall = Infinity;
  while (performance.now() - start < warmMs) {
    const t0 = performance.now();
    runner(n);
    const dt = performance.now() - t0;
    perCall = Math.min(perCall, dt / n);
    if (dt < 5) n *= 2;
  }
  return Math.max(1, Math.ceil(batchMs / perCall));
}

/**
 * Runs the cost rounds.
 * @param contenders [{ id, label, group, floor, perCall, fn, arg, note }]
 * @param floor LineChild of the floor program
 * @param floorCommands { key: command } e.g. { single: 'single 50000', many1000: 'many 1000 40' }
 */
async function measure({ contenders, floor, floorCommands, rounds, warmMs, batchMs, log }) {
  const runners = contenders.map((c) => makeRunner(c.fn, c.arg));
  const iterations = [];
  for (let i = 0; i < contenders.length; i++) {
    const c = contenders[i];
    iterations.push(calibrate(runners[i], warmMs, batchMs));
    log(`  warm: ${c.id} (${iterations[i]} calls per batch)`);
  }
  const samples = contenders.map(() => []);
  const floorSamples = {};
  for (let r = 0; r < rounds; r++) {
    // The floor first on even rounds, last on odd ones; JS order rotated.
    const order = contenders.map((_, i) => (i + r) % contenders.length);
    const runFloor = async () => {
      for (const [key, command] of Object.entries(floorCommands)) {
        floor.send(command);
        const result = JSON.parse(await floor.next());
        if (result.error) throw new Error(`floor: ${result.error} (${command})`);
        for (const [k, v] of Object.entries(result)) {
          const name = key === 'single' ? k : `${key}.${k}`;
          (floorSamples[name] ??= []).push(v);
        }
      }
    };
    if (r % 2 === 0) await runFloor();
    for (const i of order) {
      const c = contenders[i];
      const n = iterations[i];
      const t0 = process.hrtime.bigint();
      runners[i](n);
      const ns = Number(process.hrtime.bigint() - t0);
      samples[i].push(ns / (n * c.perCall));
    }
    if (r % 2 === 1) await runFloor();
    // Let the event loop breathe between rounds (timers, GC idle tasks).
    await new Promise((resolve) => setImmediate(resolve));
    log(`  round ${r + 1}/${rounds} done`);
  }
  const floorStats = Object.fromEntries(Object.entries(floorSamples).map(([k, v]) => [k, { ...summary(v), samples: v }]));
  const results = contenders.map((c, i) => {
    const ns = summary(samples[i]);
    const out = { id: c.id, label: c.label, group: c.group, floor: c.floor ?? null, perCall: c.perCall, note: c.note ?? null, ns, samples: samples[i] };
    if (c.floor) {
      const fs = floorSamples[c.floor];
      // Rounds pair up: floor sample r and contender sample r ran back to back.
      const ratios = samples[i].map((v, r) => v / fs[r]);
      out.ratio = summary(ratios);
      const mt = floorSamples[`${c.floor}Mt`];
      if (mt) out.ratioMt = summary(samples[i].map((v, r) => v / mt[r]));
    }
    return out;
  });
  return { floor: floorStats, results, rounds, batchMs };
}

module.exports = { measure, connectMany, makeToucher, makeRunner, round };
