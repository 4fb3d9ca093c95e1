'use strict';
// What sockstate/mysql2's guard costs per query: a stock and a guarded
// mysql2 pool against the same MariaDB on loopback, run in alternating
// blocks in one process, so the figure is a ratio measured side by side.
//
//   node bench/mysql2.js [--quick] [--out <file>]
//
// Prints a table and writes bench/results-mysql2.json. Needs mariadb-server
// (apt-get install mariadb-server) and the compiled lib/ (npm run build:ts).
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { machine, round, summary, table } = require('./util');

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const outArg = argv.indexOf('--out');
const outFile = outArg >= 0 ? path.resolve(argv[outArg + 1]) : path.join(__dirname, 'results-mysql2.json');
const config = quick ? { rounds: 7, queries: 300, checkouts: 2000 } : { rounds: 21, queries: 1000, checkouts: 10000 };

const started = Date.now();
const log = (msg) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);

function findProgram(candidates) {
  return candidates.find((file) => {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function greets(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('data', () => done(true));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

/** MariaDB in a temporary directory on a free loopback port; `stop()` removes it all. */
async function startMariaDB() {
  const mariadbd = findProgram(['/usr/sbin/mariadbd', '/usr/sbin/mysqld']);
  const installDb = findProgram(['/usr/bin/mariadb-install-db', '/usr/bin/mysql_install_db']);
  if (!mariadbd || !installDb) throw new Error('MariaDB is not installed: apt-get install mariadb-server');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-bench-mariadb-'));
  const data = path.join(dir, 'data');
  const asUser = process.getuid && process.getuid() === 0 ? ['--user=root'] : [];
  const install = spawnSync(installDb, ['--no-defaults', `--datadir=${data}`, ...asUser, '--auth-root-authentication-method=normal', '--skip-test-db'], {
    encoding: 'utf8',
  });
  if (install.status !== 0) throw new Error(`mariadb-install-db: ${install.stderr}`);
  const port = await freePort();
  const child = spawn(
    mariadbd,
    [
      '--no-defaults',
      `--datadir=${data}`,
      ...asUser,
      '--skip-networking=0',
      '--bind-address=127.0.0.1',
      `--port=${port}`,
      `--socket=${path.join(dir, 'mysqld.sock')}`,
      `--pid-file=${path.join(dir, 'mysqld.pid')}`,
      `--log-error=${path.join(dir, 'error.log')}`,
      '--skip-name-resolve',
      '--skip-log-bin',
      '--innodb-buffer-pool-size=16M',
    ],
    { stdio: 'ignore' },
  );
  let exited = false;
  child.once('exit', () => (exited = true));
  const stop = async () => {
    if (!exited) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  while (!exited && !(await greets(port))) {
    if (Date.now() > deadline) {
      await stop();
      throw new Error('mariadbd did not start');
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (exited) {
    await stop();
    throw new Error('mariadbd exited at start');
  }
  return { port, stop };
}

function query(pool) {
  return new Promise((resolve, reject) => pool.query('SELECT 1', (err) => (err ? reject(err) : resolve())));
}

function checkout(pool) {
  return new Promise((resolve, reject) =>
    pool.getConnection((err, conn) => {
      if (err) return reject(err);
      conn.release();
      resolve();
    }),
  );
}

/** ns per call of `fn`, `n` calls in sequence. */
async function block(fn, pool, n) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn(pool);
  return Number(process.hrtime.bigint() - t0) / n;
}

/** Alternating blocks, the order flipped every round; returns ns/call for each. */
async function sideBySide(fn, stock, guarded, n) {
  await block(fn, stock, Math.ceil(n / 4));
  await block(fn, guarded, Math.ceil(n / 4));
  const out = { stock: [], guarded: [], ratio: [] };
  for (let r = 0; r < config.rounds; r++) {
    const order = r % 2 === 0 ? ['stock', 'guarded'] : ['guarded', 'stock'];
    const pair = {};
    for (const which of order) pair[which] = await block(fn, which === 'stock' ? stock : guarded, n);
    out.stock.push(pair.stock);
    out.guarded.push(pair.guarded);
    out.ratio.push(pair.guarded / pair.stock);
  }
  return { stockNs: summary(out.stock), guardedNs: summary(out.guarded), ratio: summary(out.ratio) };
}

async function main() {
  const mysql = require('mysql2');
  const { guardPool, guardStats } = require('../lib/integrations/mysql2');
  const results = { quick, machine: machine(), config };
  log(`machine: ${JSON.stringify(results.machine)}`);
  const db = await startMariaDB();
  log(`MariaDB on 127.0.0.1:${db.port}`);
  const options = { host: '127.0.0.1', port: db.port, user: 'root', connectionLimit: 1 };
  const stock = mysql.createPool(options);
  const guarded = guardPool(mysql.createPool(options));
  const withReuse = guardPool(mysql.createPool(options), { reuse: { maxSilentMs: 60_000 } });
  try {
    results.query = await sideBySide(query, stock, guarded, config.queries);
    log(`query: ratio median ${round(results.query.ratio.median, 4)}`);
    results.queryWithReuse = await sideBySide(query, stock, withReuse, config.queries);
    log(`query, reuse options: ratio median ${round(results.queryWithReuse.ratio.median, 4)}`);
    results.checkout = await sideBySide(checkout, stock, guarded, config.checkouts);
    log(`checkout alone: ratio median ${round(results.checkout.ratio.median, 4)}`);
    // The floor under the guard's cost: the one poll(2) it makes, and the
    // whole isReusable call, on the same connection in the same run.
    const { native } = require('../lib/probe/native');
    const { isReusable } = require('../lib/policy/reuse');
    const stream = guarded._freeConnections.get(0).stream;
    const perCall = (fn) => {
      const samples = [];
      for (let r = 0; r < config.rounds; r++) {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < config.checkouts; i++) fn();
        samples.push(Number(process.hrtime.bigint() - t0) / config.checkouts);
      }
      return summary(samples);
    };
    results.pollNs = perCall(() => native.poll(stream._handle.fd));
    results.isReusableNs = perCall(() => isReusable(stream));
    log(`poll(2) ${round(results.pollNs.median)} ns, isReusable ${round(results.isReusableNs.median)} ns`);
    results.guardStats = { guarded: guardStats(guarded), withReuse: guardStats(withReuse) };
    if (results.guardStats.guarded.rejected !== 0 || results.guardStats.withReuse.rejected !== 0) {
      throw new Error(`a healthy connection was rejected: ${JSON.stringify(results.guardStats)}`);
    }
  } finally {
    await Promise.all([stock, guarded, withReuse].map((p) => new Promise((resolve) => p.end(resolve))));
    await db.stop();
  }

  const row = (name, r) => [
    name,
    round(r.stockNs.median / 1000, 2),
    round(r.guardedNs.median / 1000, 2),
    round((r.guardedNs.median - r.stockNs.median) / 1000, 3),
    `${round(r.ratio.median, 4)}×`,
    `${round(r.ratio.p25, 4)}–${round(r.ratio.p75, 4)}`,
  ];
  console.log(
    table(
      ['per call (loopback MariaDB, connectionLimit 1)', 'stock µs', 'guarded µs', 'added µs', 'ratio (median of rounds)', 'ratio p25–p75'],
      [
        row('pool.query("SELECT 1")', results.query),
        row('pool.query, reuse: { maxSilentMs }', results.queryWithReuse),
        row('getConnection + release only', results.checkout),
      ],
    ),
  );
  console.log(
    `\nthe floor, same run: poll(2) on the pool's socket ${round(results.pollNs.median / 1000, 3)} µs, ` +
      `isReusable() ${round(results.isReusableNs.median / 1000, 3)} µs per call (medians of ${config.rounds} rounds)`,
  );
  fs.writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote ${path.relative(process.cwd(), outFile)}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
