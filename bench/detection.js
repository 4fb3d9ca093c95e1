'use strict';
// Detection, where pure JS loses:
// 1. the keep-alive race: requests on a pooled socket the server has
//    already closed, with Node's stock http.Agent and with sockstate's Agent;
// 2. time from a peer's close() in another process to detection: Node's
//    'end' event versus polling connectionState.
const http = require('node:http');
const net = require('node:net');
const { once } = require('node:events');
const { startFixture, summary, round, sleep, busyWait } = require('./util');

// ---------------------------------------------------------------- race

function request(agent, port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ok: res.statusCode === 200, reused: req.reusedSocket, code: null }));
      res.on('error', (err) => resolve({ ok: false, reused: req.reusedSocket, code: err.code ?? err.message }));
    });
    req.on('error', (err) => resolve({ ok: false, reused: req.reusedSocket, code: err.code ?? err.message }));
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
  });
}

/** A request that must succeed (a fresh connection after a failure). */
async function warm(agent, port) {
  for (let i = 0; i < 3; i++) {
    const r = await request(agent, port);
    if (r.ok) return;
  }
  throw new Error('the idle-close server does not answer');
}

function tally(results) {
  const failed = results.filter((r) => !r.ok);
  const codes = {};
  for (const r of failed) codes[r.code] = (codes[r.code] ?? 0) + 1;
  return { requests: results.length, failed: failed.length, reused: results.filter((r) => r.reused).length, codes };
}

/** After each response, block the loop for `blockMs`, then request at once. */
async function blockedRun(agent, port, trials, blockMs) {
  const results = [];
  for (let i = 0; i < trials; i++) {
    await warm(agent, port);
    // The socket is back in the free pool once the response has ended.
    await new Promise((resolve) => setImmediate(resolve));
    busyWait(blockMs);
    results.push(await request(agent, port));
  }
  return tally(results);
}

/** No blocking: the next request `delays[i]` ms after a response. */
async function jitteredRun(agent, port, delays) {
  const results = [];
  for (const d of delays) {
    await warm(agent, port);
    await sleep(d);
    results.push(await request(agent, port));
  }
  return tally(results);
}

function staleCount(agent) {
  // The counter's name is the Agent's choice; report every numeric own or
  // prototype getter whose name mentions stale/destroyed sockets.
  const out = {};
  let proto = agent;
  while (proto && proto !== Object.prototype) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      if (!/stale|destroyed|discard|evict/i.test(key)) continue;
      let v;
      try {
        v = agent[key];
      } catch {
        continue;
      }
      if (typeof v === 'number' && !(key in out)) out[key] = v;
    }
    proto = Object.getPrototypeOf(proto);
  }
  return out;
}

async function keepAliveRace({ Agent, blockedTrials, jitterTrials, idleMs, log }) {
  const { child, first } = await startFixture('idle-close-server.js', [String(idleMs)]);
  const port = Number(first);
  const out = { idleCloseMs: idleMs, blocked: { trials: blockedTrials, blockMs: 250 }, jittered: { trials: jitterTrials } };
  try {
    const agents = { stock: () => new http.Agent({ keepAlive: true, maxSockets: 1 }) };
    if (Agent) agents.sockstate = () => new Agent({ keepAlive: true, maxSockets: 1 });
    for (const [name, make] of Object.entries(agents)) {
      const agent = make();
      out.blocked[name] = await blockedRun(agent, port, blockedTrials, 250);
      if (name === 'sockstate') out.blocked[name].agentCounters = staleCount(agent);
      agent.destroy();
      log(`  race blocked ${name}: ${out.blocked[name].failed}/${out.blocked[name].requests} failed`);
    }
    // Jittered: both agents side by side with the same delays, spread
    // around the server's idle close.
    const delays = Array.from({ length: jitterTrials }, (_, i) => idleMs - 20 + ((i * 37) % 41) + Math.random());
    out.jittered.delayMs = [round(Math.min(...delays), 1), round(Math.max(...delays), 1)];
    const made = Object.fromEntries(Object.entries(agents).map(([name, make]) => [name, make()]));
    const runs = await Promise.all(Object.entries(made).map(([name, agent]) => jitteredRun(agent, port, delays).then((r) => [name, r])));
    for (const [name, r] of runs) {
      out.jittered[name] = r;
      if (name === 'sockstate') r.agentCounters = staleCount(made[name]);
      made[name].destroy();
      log(`  race jittered ${name}: ${r.failed}/${r.requests} failed`);
    }
  } finally {
    await child.close();
  }
  return out;
}

// ---------------------------------------------------------------- close

/**
 * One trial: connect; the peer process closes after 20-60 ms and reports
 * when. Resolves with the latency of each detector in ms (null: not within
 * `waitMs`).
 */
async function closeTrial(peer, port, mode, connectionState, waitMs) {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  await once(socket, 'connect');
  if (mode === 'paused') {
    // Nobody reads this socket (back-pressure, or a pooled connection
    // between uses); the peer says "bye" before closing.
    socket.pause();
    socket.write('P');
  }
  const seen = { end: null, poll: null, boundary: null };
  socket.once('end', () => {
    seen.end ??= process.hrtime.bigint();
  });
  const closedLine = peer.next();
  const check = (key) => {
    if (seen[key] === null && connectionState(socket).status !== 'open') seen[key] = process.hrtime.bigint();
  };
  let stop = false;
  let timer = null;
  if (mode === 'busy') {
    // 10 ms synchronous slices chained with setImmediate: I/O callbacks
    // ('end') get a turn between slices. The code in a slice checks the
    // socket every 1 ms, as code about to use it would.
    const slice = () => {
      if (stop) return;
      check('boundary');
      check('poll');
      const end = performance.now() + 10;
      let next = performance.now() + 1;
      while (performance.now() < end) {
        if (performance.now() >= next) {
          check('poll');
          next += 1;
        }
      }
      setImmediate(slice);
    };
    setImmediate(slice);
  } else {
    timer = setInterval(() => check('poll'), 1);
  }
  const line = await closedLine;
  const closedAt = BigInt(line.split(' ')[1]);
  const deadline = performance.now() + waitMs;
  const keys = mode === 'busy' ? ['end', 'poll', 'boundary'] : ['end', 'poll'];
  while (keys.some((k) => seen[k] === null) && performance.now() < deadline) await sleep(2);
  stop = true;
  if (timer) clearInterval(timer);
  socket.destroy();
  const ms = (t) => (t === null ? null : Number(t - closedAt) / 1e6);
  return { end: ms(seen.end), poll: ms(seen.poll), boundary: mode === 'busy' ? ms(seen.boundary) : undefined };
}

function latencyStats(values) {
  const got = values.filter((v) => v !== null);
  const s = got.length > 0 ? summary(got) : null;
  return {
    detected: got.length,
    of: values.length,
    medianMs: s ? round(s.median, 3) : null,
    p75Ms: s ? round(s.p75, 3) : null,
    maxMs: s ? round(s.max, 3) : null,
  };
}

async function closeDetection({ connectionState, trials, pausedTrials, waitMs, log }) {
  const { child, first } = await startFixture('closing-peer.js');
  const port = Number(first);
  const out = {};
  try {
    for (const [mode, n] of [
      ['idle', trials],
      ['busy', trials],
      ['paused', pausedTrials],
    ]) {
      const rows = [];
      for (let i = 0; i < n; i++) rows.push(await closeTrial(child, port, mode, connectionState, waitMs));
      out[mode] = {
        end: latencyStats(rows.map((r) => r.end)),
        connectionState: latencyStats(rows.map((r) => r.poll)),
      };
      if (mode === 'busy') out[mode].connectionStateAtSliceStart = latencyStats(rows.map((r) => r.boundary));
      log(`  close ${mode}: end ${JSON.stringify(out[mode].end)} connectionState ${JSON.stringify(out[mode].connectionState)}`);
    }
  } finally {
    await child.close();
  }
  out.waitMs = waitMs;
  return out;
}

module.exports = { keepAliveRace, closeDetection };
