'use strict';
// sockstate/undici: what the guard fixes and what it costs.
//
// 1. Failures: the keep-alive race (server in a child process closing
//    connections idle for 100 ms, the client's loop blocked 250 ms before
//    each request, dispatched from a timer or from an I/O callback), stock
//    vs guarded, for every undici major installed and Node's built-in
//    fetch. Each run is a child process (test/fixtures/undici-race-client.js)
//    so that the built-in fetch runs on Node's bundled undici.
// 2. Cost: sequential keep-alive requests on loopback (every one reuses the
//    connection, so every one is checked), stock undici.Agent vs sockstate's
//    Agent over the same undici, in pairs of short blocks run back to back
//    (which goes first alternates); reported as the median of the per-pair
//    ratios, with the median time per request of each. Also the check
//    alone (isReusable on the connection's socket), for scale.
// 3. What replay costs on the healthy path: the guarded Agent against the
//    same guard with its evidence read switched off (the TCP_INFO read
//    before each request on a reused connection and the handler wrapper,
//    as the guard was before replay), in the same rotating blocks.
//
//   node bench/undici.js [--quick]
//
// Needs the package built (npm run build / tsc). Writes
// bench/results-undici.json.
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { promisify } = require('node:util');
const diagnostics = require('node:diagnostics_channel');
const { LineChild, machine, round, table, summary } = require('./util');

const run = promisify(execFile);
const quick = process.argv.includes('--quick');
const RACE_REQUESTS = quick ? 10 : 20;
const PAIRS = quick ? 60 : 400;
const PER_BLOCK = quick ? 20 : 25;

const root = path.join(__dirname, '..');
const testFixtures = path.join(root, 'test', 'fixtures');
const { guardUndici } = require('../lib/integrations/undici/guard.js');
const { isReusable } = require('../lib/index.js');
// The guard calls watchRequest through the module's exports object, so a
// block can run without it: the guard as it was before replay.
const replayModule = require('../lib/policy/replay.js');
const watchRequest = replayModule.watchRequest;

const [major, minor] = process.versions.node.split('.').map(Number);
const majors = [
  { pkg: 'undici6-prevalidation', label: 'undici 6.24.1 (no idle validation)' },
  { pkg: 'undici6', label: 'undici 6.29.1' },
  { pkg: 'undici7', label: 'undici 7.30.2' },
  // undici 8 needs Node >= 22.19.
  { pkg: 'undici8', label: 'undici 8.13.0', skip: major < 22 || (major === 22 && minor < 19) },
];

// The race server lives with the tests (bench/util's startFixture runs
// bench/fixtures).
async function startServer(idleMs) {
  const child = new LineChild(process.execPath, [path.join(testFixtures, 'undici-idle-close-server.js'), String(idleMs)]);
  const port = Number(await child.next());
  return { child, port };
}

async function race(url, config) {
  const full = { url, n: RACE_REQUESTS, blockMs: 250, ...config };
  const { stdout } = await run(process.execPath, [path.join(testFixtures, 'undici-race-client.js'), JSON.stringify(full)], {
    cwd: root,
    timeout: 120_000,
  });
  return JSON.parse(stdout);
}

async function failures() {
  const server = await startServer(100);
  const url = `http://127.0.0.1:${server.port}/`;
  const rows = [];
  const clients = [
    ...majors.map((m) => ({ ...m, stock: { undici: m.pkg }, guarded: { undici: m.pkg, guarded: true }, client: 'request' })),
    {
      label: `Node ${process.versions.node} built-in fetch (undici ${process.versions.undici})`,
      stock: { undici: null },
      guarded: { undici: 'undici', guarded: true, global: true },
      client: 'fetch',
    },
  ];
  try {
    for (const c of clients) {
      if (c.skip) continue;
      for (const mode of ['timer', 'io']) {
        const stock = await race(url, { ...c.stock, client: c.client, mode });
        const guarded = await race(url, { ...c.guarded, client: c.client, mode });
        rows.push({
          client: c.label,
          mode,
          requests: RACE_REQUESTS,
          stockFailures: stock.failures,
          stockRaced: stock.raced,
          guardedFailures: guarded.failures,
          guardedRaced: guarded.raced,
          staleSocketsDestroyed: guarded.staleSocketsDestroyed,
        });
        process.stderr.write('.');
      }
    }
  } finally {
    await server.child.close();
  }
  process.stderr.write('\n');
  return rows;
}

async function cost() {
  const server = await startServer(600_000);
  const url = `http://127.0.0.1:${server.port}/`;
  const rows = [];
  try {
    for (const m of majors) {
      if (m.skip) continue;
      const undici = require(m.pkg);
      const stock = new undici.Agent();
      const guarded = new (guardUndici(undici).Agent)();
      const one = async (dispatcher) => {
        const res = await undici.request(url, { dispatcher });
        await res.body.text();
      };
      // Warm both: connection, JIT.
      for (let i = 0; i < 300; i++) {
        await one(stock);
        await one(guarded);
      }
      const times = { stock: [], guarded: [], noEvidence: [] };
      const ratios = [];
      const evidenceRatios = [];
      const arms = ['stock', 'noEvidence', 'guarded'];
      for (let p = 0; p < PAIRS; p++) {
        // Every order of the three arms in turn, so that none always runs
        // first or last.
        const order = [arms[p % 3], arms[(p + 1 + (p % 2)) % 3], arms[(p + 2 - (p % 2)) % 3]];
        const pair = {};
        for (const which of order) {
          const dispatcher = which === 'stock' ? stock : guarded;
          replayModule.watchRequest = which === 'noEvidence' ? () => null : watchRequest;
          const t0 = performance.now();
          for (let i = 0; i < PER_BLOCK; i++) await one(dispatcher);
          pair[which] = ((performance.now() - t0) * 1000) / PER_BLOCK;
          times[which].push(pair[which]);
        }
        replayModule.watchRequest = watchRequest;
        ratios.push(pair.guarded / pair.stock);
        evidenceRatios.push(pair.guarded / pair.noEvidence);
      }
      // The check alone, on the guarded Agent's live connection.
      let socket = null;
      const onConnected = ({ socket: s }) => {
        socket = s;
      };
      diagnostics.subscribe('undici:client:connected', onConnected);
      const probe = new (guardUndici(undici).Agent)();
      await one(probe);
      diagnostics.unsubscribe('undici:client:connected', onConnected);
      const CHECKS = 20000;
      let reusable = 0;
      const c0 = performance.now();
      for (let i = 0; i < CHECKS; i++) if (isReusable(socket)) reusable++;
      const checkUs = ((performance.now() - c0) * 1000) / CHECKS;
      // The evidence alone: the TCP_INFO read a request on a reused
      // connection now pays, and its release when the response starts.
      const e0 = performance.now();
      for (let i = 0; i < CHECKS; i++) {
        const watch = watchRequest(socket);
        if (watch === null) throw new Error('no byte counts for an idle TCP connection');
        replayModule.releaseWatch(watch);
      }
      const evidenceUs = ((performance.now() - e0) * 1000) / CHECKS;
      await probe.close();
      if (reusable !== CHECKS) throw new Error('the idle connection was not reusable');
      const s = summary(times.stock);
      const g = summary(times.guarded);
      const r = summary(ratios);
      const e = summary(evidenceRatios);
      rows.push({
        client: m.label,
        stockUsPerRequest: round(s.median, 1),
        guardedUsPerRequest: round(g.median, 1),
        ratio: round(r.median, 3),
        ratioP25: round(r.p25, 3),
        ratioP75: round(r.p75, 3),
        noEvidenceUsPerRequest: round(summary(times.noEvidence).median, 1),
        replayEvidenceRatio: round(e.median, 3),
        replayEvidenceP25: round(e.p25, 3),
        replayEvidenceP75: round(e.p75, 3),
        checkUs: round(checkUs, 2),
        // The check's share of a stock request: the guard's cost without
        // the noise of whole requests, which on a loaded host swamps it.
        checkShare: round(checkUs / s.median, 4),
        evidenceUs: round(evidenceUs, 2),
        evidenceShare: round(evidenceUs / s.median, 4),
        staleSocketsDestroyed: guarded.staleSocketsDestroyed,
      });
      await Promise.all([stock.close(), guarded.close()]);
      process.stderr.write('.');
    }
  } finally {
    await server.child.close();
  }
  process.stderr.write('\n');
  return rows;
}

async function main() {
  const failureRows = await failures();
  const costRows = await cost();
  console.log(`sockstate/undici on Node ${process.version}${quick ? ' (--quick)' : ''}`);
  console.log('');
  console.log(`The keep-alive race: ${RACE_REQUESTS} requests, server closes after 100 ms idle, loop blocked 250 ms before each`);
  console.log(
    table(
      ['client', 'dispatched from', 'stock failed', 'guarded failed', 'raced (stock/guarded)', 'stale sockets destroyed'],
      failureRows.map((r) => [
        r.client,
        r.mode === 'io' ? 'I/O callback' : 'timer',
        `${r.stockFailures}/${r.requests}`,
        `${r.guardedFailures}/${r.requests}`,
        `${r.stockRaced}/${r.guardedRaced}`,
        String(r.staleSocketsDestroyed),
      ]),
    ),
  );
  console.log('');
  console.log(`Cost per keep-alive request on loopback: ${PAIRS} pairs of blocks of ${PER_BLOCK} sequential requests, stock and guarded back to back`);
  console.log(
    table(
      ['client', 'stock µs/request', 'guarded µs/request', 'guarded / stock (median of pairs)', 'p25–p75', 'the check alone µs', 'check / stock request'],
      costRows.map((r) => [
        r.client,
        String(r.stockUsPerRequest),
        String(r.guardedUsPerRequest),
        `${r.ratio}×`,
        `${r.ratioP25}–${r.ratioP75}`,
        String(r.checkUs),
        `${round(r.checkShare * 100, 1)}%`,
      ]),
    ),
  );
  console.log('');
  console.log('What the replay evidence adds per request (target ≤ 1.02×): the guarded Agent against the same guard without it, same blocks');
  console.log(
    table(
      ['client', 'without evidence µs/request', 'with evidence µs/request', 'with / without (median of blocks)', 'p25–p75', 'the evidence alone µs', 'evidence / stock request'],
      costRows.map((r) => [
        r.client,
        String(r.noEvidenceUsPerRequest),
        String(r.guardedUsPerRequest),
        `${r.replayEvidenceRatio}×`,
        `${r.replayEvidenceP25}–${r.replayEvidenceP75}`,
        String(r.evidenceUs),
        `${round(r.evidenceShare * 100, 1)}%`,
      ]),
    ),
  );
  const out = { machine: machine(), node: process.version, quick, failures: failureRows, cost: costRows };
  fs.writeFileSync(path.join(__dirname, 'results-undici.json'), `${JSON.stringify(out, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
