'use strict';
// What the sockstate/pg guard costs per query: a stock pg.Pool and a guarded
// one (plain check, and with reuse options) against the same PostgreSQL on
// loopback, measured side by side in interleaved blocks, reported as ratios
// to the stock pool. Also the bare checkout (connect + release, no query),
// where the guard's share is largest.
//
//   node bench/pg.js [--quick]
//
// Starts its own PostgreSQL (initdb in a temporary directory, free loopback
// port, as the postgres user when run as root) and stops it afterwards.
// Needs the package built (npm run build / tsc) and PostgreSQL installed.
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { performance } = require('node:perf_hooks');

const quick = process.argv.includes('--quick');
const BLOCKS = quick ? 8 : 30;
const QUERIES = quick ? 300 : 1000;
const CHECKOUTS = quick ? 3000 : 10000;
const PAIRS = quick ? 2000 : 20000;

const binDir = ['15', '16', '17', '14'].map((v) => `/usr/lib/postgresql/${v}/bin`).find((d) => fs.existsSync(path.join(d, 'postgres')));
if (binDir === undefined) {
  console.error('bench/pg.js: PostgreSQL is not installed (apt-get install postgresql)');
  process.exit(1);
}
const pg = require('pg');
const { guardPool, guardStats } = require('../lib/integrations/pg.js');

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startPostgres() {
  const ids = process.getuid() === 0
    ? { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) }
    : {};
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-bench-pg-'));
  if (ids.uid !== undefined) fs.chownSync(dir, ids.uid, ids.gid);
  const data = path.join(dir, 'data');
  execFileSync(path.join(binDir, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync'], { stdio: 'ignore', ...ids });
  const port = await freePort();
  const child = spawn(path.join(binDir, 'postgres'), ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'fsync=off'], {
    stdio: 'ignore',
    ...ids,
  });
  for (let i = 0; ; i++) {
    try {
      execFileSync(path.join(binDir, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)]);
      break;
    } catch {
      if (i > 200) throw new Error('PostgreSQL did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    config: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' },
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function queries(pool, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await pool.query('SELECT 1');
  return ((performance.now() - t0) * 1000) / n;
}

// One query on each pool in turn, the order alternating, N times: the
// ratio of each pair taken in the same instant, so that the host's load
// (which swings by more than the guard costs) hits both sides alike.
async function pairedQueries(a, b, n) {
  const ratios = [];
  const us = { a: [], b: [] };
  for (let i = 0; i < n; i++) {
    const first = i % 2 === 0 ? a : b;
    const second = first === a ? b : a;
    let t0 = performance.now();
    await first.query('SELECT 1');
    const t1 = performance.now();
    await second.query('SELECT 1');
    const t2 = performance.now();
    const [ta, tb] = first === a ? [t1 - t0, t2 - t1] : [t2 - t1, t1 - t0];
    us.a.push(ta * 1000);
    us.b.push(tb * 1000);
    ratios.push(tb / ta);
    t0 = t2;
  }
  return { ratio: median(ratios), aUs: median(us.a), bUs: median(us.b) };
}

async function checkouts(pool, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) (await pool.connect()).release();
  return ((performance.now() - t0) * 1000) / n;
}

async function main() {
  const server = await startPostgres();
  const subjects = {
    stock: new pg.Pool({ ...server.config, max: 1 }),
    guarded: guardPool(new pg.Pool({ ...server.config, max: 1 })),
    'guarded, reuse {maxSilentMs}': guardPool(new pg.Pool({ ...server.config, max: 1 }), { reuse: { maxSilentMs: 300_000 } }),
  };
  const names = Object.keys(subjects);
  const poolErrors = [];
  let ending = false;
  // pg-pool's end() resolves before its clients' sockets close; errors
  // from the server's shutdown after that are not the run's.
  for (const pool of Object.values(subjects)) pool.on('error', (err) => ending || poolErrors.push(err));
  const results = { query: {}, checkout: {} };
  try {
    for (const pool of Object.values(subjects)) await queries(pool, 200);
    for (const [kind, fn, n] of [['query', queries, QUERIES], ['checkout', checkouts, CHECKOUTS]]) {
      const perBlock = Object.fromEntries(names.map((name) => [name, []]));
      for (let b = 0; b < BLOCKS; b++) {
        // Rotate the order so no subject always runs first.
        for (let k = 0; k < names.length; k++) {
          const name = names[(b + k) % names.length];
          perBlock[name].push(await fn(subjects[name], n));
        }
      }
      for (const name of names) {
        // Ratio per block against the stock pool measured in the same block.
        const ratios = perBlock[name].map((us, b) => us / perBlock.stock[b]);
        results[kind][name] = { usPerOp: median(perBlock[name]), ratio: median(ratios) };
      }
    }
    results.pairedQuery = {};
    for (const name of names.slice(1)) {
      const r = await pairedQueries(subjects.stock, subjects[name], PAIRS);
      results.pairedQuery[name] = { stockUs: r.aUs, usPerOp: r.bUs, ratio: r.ratio };
    }
    for (const name of ['guarded', 'guarded, reuse {maxSilentMs}']) {
      const stats = guardStats(subjects[name]);
      if (stats.rejected !== 0) throw new Error(`${name}: the guard evicted ${stats.rejected} healthy clients`);
    }
  } finally {
    ending = true;
    for (const pool of Object.values(subjects)) await pool.end();
    await server.stop();
  }
  if (poolErrors.length > 0) throw new Error(`pool errors during the run: ${poolErrors.map((e) => e.message).join('; ')}`);

  const rows = [];
  for (const kind of ['query', 'checkout']) {
    for (const name of names) {
      const r = results[kind][name];
      rows.push([kind === 'query' ? 'SELECT 1 per query' : 'connect()+release()', name, r.usPerOp.toFixed(1), `${r.ratio.toFixed(3)}×`]);
    }
  }
  for (const [name, r] of Object.entries(results.pairedQuery)) {
    rows.push(['SELECT 1, paired per query', name, `${r.usPerOp.toFixed(1)} (stock ${r.stockUs.toFixed(1)})`, `${r.ratio.toFixed(3)}×`]);
  }
  const header = ['operation', 'pool', 'µs/op (median)', 'ratio to stock (median of blocks)'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(`pg.Pool on loopback, max 1, ${BLOCKS} interleaved blocks of ${QUERIES} queries / ${CHECKOUTS} checkouts (node ${process.version})`);
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  const out = {
    node: process.version,
    cpus: os.cpus().length,
    quick,
    blocks: BLOCKS,
    queriesPerBlock: QUERIES,
    checkoutsPerBlock: CHECKOUTS,
    pairs: PAIRS,
    results,
  };
  fs.writeFileSync(path.join(__dirname, 'results-pg.json'), `${JSON.stringify(out, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
