import { execFileSync, spawn } from 'node:child_process';
import * as diagnostics from 'node:diagnostics_channel';
import { EventEmitter, once } from 'node:events';
import * as path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONNECTION_CHANNEL, type ConnectionMessage, REUSE_CHECK_CHANNEL, type ReuseCheckMessage } from '../src/policy/channel';
import { native } from '../src/probe/native';
import { guardPool, guardStats } from '../src/integrations/pg';
import { caught } from './helpers/errors';
import { type Postgres, postgresAvailable, startPostgres } from './helpers/postgres';
import { busyWait, sleep, waitFor } from './helpers/sockets';

// node-postgres' pg.Pool against a real PostgreSQL started here: the stock
// pool's failures reproduced and the guarded pool's counted, side by side,
// each pool with its own sessions.

const run = native !== null && postgresAvailable();
const psql = '/usr/lib/postgresql/15/bin/psql';

interface Tally {
  ok: number;
  failed: string[];
}

/** One query, tallied: its result or its error's message. */
async function tally(pool: pg.Pool, t: Tally): Promise<void> {
  try {
    const { rows } = await pool.query('SELECT 1 AS one');
    expect(rows).toEqual([{ one: 1 }]);
    t.ok += 1;
  } catch (err) {
    t.failed.push((err as Error).message);
  }
}

/** Pool events, counted. */
function events(pool: pg.Pool): Record<'connect' | 'acquire' | 'release' | 'remove' | 'error', number> & { releaseErrors: unknown[]; poolErrors: Error[] } {
  const counts = { connect: 0, acquire: 0, release: 0, remove: 0, error: 0, releaseErrors: [] as unknown[], poolErrors: [] as Error[] };
  pool.on('connect', () => (counts.connect += 1));
  pool.on('acquire', () => (counts.acquire += 1));
  pool.on('release', (err) => {
    counts.release += 1;
    if (err) counts.releaseErrors.push(err);
  });
  pool.on('remove', () => (counts.remove += 1));
  pool.on('error', (err) => {
    counts.error += 1;
    counts.poolErrors.push(err);
  });
  return counts;
}

describe.runIf(run)('sockstate/pg: guardPool against PostgreSQL', () => {
  let server: Postgres;
  const pools: pg.Pool[] = [];
  beforeAll(async () => {
    server = await startPostgres({ ssl: true });
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => (p.ending ? undefined : p.end().catch(() => {}))));
    await server?.stop();
  });

  function newPool(extra: pg.PoolConfig = {}): pg.Pool {
    const pool = new pg.Pool({ ...server.config, max: 1, idleTimeoutMillis: 0, ...extra });
    pools.push(pool);
    return pool;
  }

  const adminSync = (sql: string): string => server.adminSync(sql);

  it('server idle timeout while the loop is busy: 6 of 6 stock queries fail, 0 of 6 guarded', async () => {
    // idle_session_timeout for these sessions only: 1 s; the loop stays busy 1.8 s.
    const options = '-c idle_session_timeout=1000';
    const stock = newPool({ options, application_name: 'idle-stock' });
    const guarded = guardPool(newPool({ options, application_name: 'idle-guarded' }));
    expect(guarded).toBeInstanceOf(pg.Pool);
    const stockEvents = events(stock);
    const guardedEvents = events(guarded);
    const s: Tally = { ok: 0, failed: [] };
    const g: Tally = { ok: 0, failed: [] };
    for (let round = 0; round < 6; round++) {
      // Each pool keeps one idle client.
      await Promise.all([stock.query('SELECT 1'), guarded.query('SELECT 1')]);
      // Busy past the timeout, and on until the server has really ended both
      // sessions (however loaded the host): the pools can read nothing meanwhile.
      busyWait(1100);
      server.sessionsGoneSync(['idle-stock', 'idle-guarded']);
      await Promise.all([tally(stock, s), tally(guarded, g)]);
    }
    expect(s.ok).toBe(0);
    expect(s.failed).toEqual(Array(6).fill('terminating connection due to idle-session timeout'));
    expect(g).toEqual({ ok: 6, failed: [] });
    // The first warm-up opens the client; every later checkout finds an
    // idle one: 6 queries after the pause and 5 warm-ups, 11 checks.
    const stats = guardStats(guarded)!;
    expect(stats).toMatchObject({ checked: 11, rejected: 6, unchecked: 0, lastProbeError: null });
    // The server's FATAL waits unread in front of its FIN.
    expect(stats.rejectedByReason).toEqual({ closed: 0, dataPending: 6, stalled: 0, silent: 0 });
    // Evicted as pg-pool retires a client: acquired, released with the error, removed.
    await waitFor(() => guardedEvents.remove === 6, 5000, 'the evicted clients to be removed');
    await sleep(200);
    expect(guardedEvents.remove).toBe(6);
    // Nothing reported twice: the discarded goodbyes raise no pool error.
    expect(guardedEvents.error).toBe(0);
    expect(guardedEvents.releaseErrors).toHaveLength(6);
    for (const err of guardedEvents.releaseErrors) {
      expect(err).toMatchObject({ name: 'SockstateError', code: 'ERR_SOCKSTATE_EVICTED', reason: 'dataPending' });
    }
    expect(guardedEvents.connect).toBe(7);
    expect(guardedEvents.acquire).toBe(12 + 6);
    expect({ total: guarded.totalCount, idle: guarded.idleCount, waiting: guarded.waitingCount }).toEqual({ total: 1, idle: 1, waiting: 0 });
    // The stock pool connects once per round: its failed query used the dead client.
    expect(stockEvents.connect).toBe(6);
  }, 60_000);

  it('a backend killed by pg_terminate_backend while the loop is busy: 4 of 4 stock queries fail, 0 guarded', async () => {
    const stock = newPool({ application_name: 'stock-victim' });
    const guarded = guardPool(newPool({ application_name: 'guarded-victim' }));
    events(stock);
    events(guarded);
    const s: Tally = { ok: 0, failed: [] };
    const g: Tally = { ok: 0, failed: [] };
    for (let round = 0; round < 4; round++) {
      await Promise.all([stock.query('SELECT 1'), guarded.query('SELECT 1')]);
      // psql runs while this loop is blocked: neither pool can read the FATAL.
      const killed = adminSync(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name IN ('stock-victim', 'guarded-victim')",
      );
      expect(killed.trim()).toBe('2');
      server.sessionsGoneSync(['stock-victim', 'guarded-victim']);
      await Promise.all([tally(stock, s), tally(guarded, g)]);
    }
    expect(s.ok).toBe(0);
    expect(s.failed).toEqual(Array(4).fill('terminating connection due to administrator command'));
    expect(g).toEqual({ ok: 4, failed: [] });
    expect(guardStats(guarded)).toMatchObject({ rejected: 4 });
  }, 60_000);

  it('every idle client dead and more checkouts waiting than clients: each is evicted once, every query succeeds, the counts stay right', async () => {
    const guarded = guardPool(newPool({ max: 3, application_name: 'all-victims' }));
    const ev = events(guarded);
    await Promise.all(Array.from({ length: 3 }, () => guarded.query('SELECT pg_sleep(0.05)')));
    expect({ total: guarded.totalCount, idle: guarded.idleCount }).toEqual({ total: 3, idle: 3 });
    expect(adminSync("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'all-victims'").trim()).toBe('3');
    server.sessionsGoneSync(['all-victims']);
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => guarded.query('SELECT $1::int AS i', [i]).then((r) => r.rows[0].i as number)));
    expect(results).toEqual([0, 1, 2, 3, 4]);
    expect(guardStats(guarded)).toMatchObject({ rejected: 3, rejectedByReason: { dataPending: 3 } });
    await waitFor(() => ev.remove === 3, 5000, 'the three evicted clients to be removed');
    expect({ connect: ev.connect, error: ev.error, total: guarded.totalCount, idle: guarded.idleCount, waiting: guarded.waitingCount }).toEqual({
      connect: 6,
      error: 0,
      total: 3,
      idle: 3,
      waiting: 0,
    });
  });

  it('the driver\'s own error events still fire: a backend killed while the loop is free reaches pool.on(\'error\')', async () => {
    const guarded = guardPool(newPool({ application_name: 'free-victim' }));
    const ev = events(guarded);
    await guarded.query('SELECT 1');
    expect(adminSync("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'free-victim'").trim()).toBe('1');
    await waitFor(() => ev.error === 1, 5000, "the pool's error event");
    expect(ev.poolErrors[0]).toMatchObject({ code: '57P01' });
    // pg-pool removed it itself: nothing was left for the guard to evict.
    await waitFor(() => guarded.totalCount === 0, 5000, 'pg-pool to remove the client');
    await tally(guarded, { ok: 0, failed: [] });
    expect(guardStats(guarded)).toMatchObject({ checked: 0, rejected: 0 });
  });

  it('healthy connections are reused: 200 queries on a pool of 5, nothing evicted, no new connection', async () => {
    const guarded = guardPool(newPool({ max: 5 }));
    const ev = events(guarded);
    const checks: ReuseCheckMessage[] = [];
    const onCheck = (m: unknown) => {
      if ((m as ReuseCheckMessage).owner === guarded) checks.push(m as ReuseCheckMessage);
    };
    const conns: ConnectionMessage[] = [];
    const onConn = (m: unknown) => {
      if ((m as ConnectionMessage).owner === guarded) conns.push(m as ConnectionMessage);
    };
    diagnostics.subscribe(REUSE_CHECK_CHANNEL, onCheck);
    diagnostics.subscribe(CONNECTION_CHANNEL, onConn);
    try {
      // Five connections first, then 200 queries five at a time.
      await Promise.all(Array.from({ length: 5 }, () => guarded.query('SELECT pg_sleep(0.05)')));
      expect(guarded.totalCount).toBe(5);
      const t: Tally = { ok: 0, failed: [] };
      for (let i = 0; i < 40; i++) await Promise.all(Array.from({ length: 5 }, () => tally(guarded, t)));
      expect(t).toEqual({ ok: 200, failed: [] });
    } finally {
      diagnostics.unsubscribe(REUSE_CHECK_CHANNEL, onCheck);
      diagnostics.unsubscribe(CONNECTION_CHANNEL, onConn);
    }
    expect(guardStats(guarded)).toMatchObject({ checked: 200, rejected: 0, unchecked: 0 });
    expect(checks).toHaveLength(200);
    expect(checks.every((m) => m.reusable && m.reason === 'idle')).toBe(true);
    expect(conns).toHaveLength(5);
    expect({ connect: ev.connect, remove: ev.remove, error: ev.error, total: guarded.totalCount, idle: guarded.idleCount }).toEqual({
      connect: 5,
      remove: 0,
      error: 0,
      total: 5,
      idle: 5,
    });
  }, 60_000);

  it('20 parallel queries on a pool of 5 while the server kills random backends: each succeeds or fails with the server\'s error, none hangs', async () => {
    const guarded = guardPool(newPool({ max: 5, application_name: 'chaos-victim' }));
    const ev = events(guarded);
    // The killer is another process, so kills land while this loop is busy too.
    const killSql =
      "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity WHERE application_name = 'chaos-victim' ORDER BY random() LIMIT 1) AS v";
    const killer = spawn('sh', ['-c', `while :; do "$0" -h 127.0.0.1 -p "$1" -U postgres -d postgres -XAtqc "$2" || exit 1; sleep 0.02; done`, psql, String(server.port), killSql], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let kills = 0;
    killer.stdout.setEncoding('utf8');
    killer.stdout.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) kills += line === '1' ? 1 : 0;
    });
    const killerExit = once(killer, 'exit');
    const outcomes: string[] = [];
    const HANG = 'hung';
    try {
      for (let wave = 0; wave < 8; wave++) {
        const wave20 = Array.from({ length: 20 }, async (_, i) => {
          const query = guarded.query('SELECT pg_sleep(0.05), $1::int AS i', [i]).then(
            (r) => (r.rows[0].i === i ? 'ok' : 'wrong row'),
            (err: Error & { code?: string }) => `error ${err.code ?? err.message}`,
          );
          let timer: ReturnType<typeof setTimeout> | undefined;
          const hang = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(HANG), 15_000)));
          const outcome = await Promise.race([query, hang]);
          clearTimeout(timer);
          return outcome;
        });
        // Between waves the loop is busy, so some kills land unseen on idle clients.
        outcomes.push(...(await Promise.all(wave20)));
        busyWait(250);
      }
    } finally {
      killer.kill();
      await killerExit;
    }
    expect(outcomes).toHaveLength(160);
    expect(kills).toBeGreaterThan(0);
    const kinds = new Set(outcomes);
    // The server's own error (57P01), or pg's for a connection the server
    // closed under a running query; never a hang or a sockstate error.
    for (const kind of kinds) {
      expect(['ok', 'error 57P01', 'error Connection terminated unexpectedly']).toContain(kind);
    }
    expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThan(0);
    expect(ev.releaseErrors.every((e) => (e as { code?: string }).code !== undefined)).toBe(true);
    await waitFor(() => guarded.waitingCount === 0, 5000, 'the queue to drain');
    expect(guarded.totalCount).toBeLessThanOrEqual(5);
    console.log(`chaos: ${kills} backends killed; outcomes`, Object.fromEntries([...kinds].map((k) => [k, outcomes.filter((o) => o === k).length])), guardStats(guarded));
  }, 120_000);

  it('over TLS: a FATAL in front of the FIN, while the loop is busy, fails the stock pool and not the guarded one', async () => {
    const ssl = { ca: server.cert!, servername: 'localhost' };
    const options = '-c idle_session_timeout=1000';
    const stock = newPool({ ssl, options, application_name: 'tls-stock' });
    const guarded = guardPool(newPool({ ssl, options, application_name: 'tls-guarded' }));
    events(stock);
    events(guarded);
    const { rows } = await guarded.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    expect(rows).toEqual([{ ssl: true }]);
    const s: Tally = { ok: 0, failed: [] };
    const g: Tally = { ok: 0, failed: [] };
    for (let round = 0; round < 3; round++) {
      await Promise.all([stock.query('SELECT 1'), guarded.query('SELECT 1')]);
      busyWait(1100);
      server.sessionsGoneSync(['tls-stock', 'tls-guarded']);
      await Promise.all([tally(stock, s), tally(guarded, g)]);
    }
    expect(s.ok).toBe(0);
    expect(s.failed).toHaveLength(3);
    expect(g).toEqual({ ok: 3, failed: [] });
    // On TLS the records before the FIN are the server's goodbye: closed.
    expect(guardStats(guarded)).toMatchObject({ rejected: 3, rejectedByReason: { closed: 3 } });
  }, 60_000);

  it('over a Unix-domain socket (host = the socket directory) the guard works the same', async () => {
    const options = '-c idle_session_timeout=1000';
    const stock = newPool({ host: server.dir, options, application_name: 'unix-stock' });
    const guarded = guardPool(newPool({ host: server.dir, options, application_name: 'unix-guarded' }));
    events(stock);
    events(guarded);
    const s: Tally = { ok: 0, failed: [] };
    const g: Tally = { ok: 0, failed: [] };
    for (let round = 0; round < 2; round++) {
      await Promise.all([stock.query('SELECT 1'), guarded.query('SELECT 1')]);
      busyWait(1100);
      server.sessionsGoneSync(['unix-stock', 'unix-guarded']);
      await Promise.all([tally(stock, s), tally(guarded, g)]);
    }
    expect(s.ok).toBe(0);
    expect(s.failed).toHaveLength(2);
    expect(g).toEqual({ ok: 2, failed: [] });
    expect(guardStats(guarded)).toMatchObject({ rejected: 2, rejectedByReason: { dataPending: 2 }, unchecked: 0 });
  }, 60_000);

  it('under reuse.maxSilentMs a client the server has been silent on too long is replaced before use', async () => {
    const guarded = guardPool(newPool(), { reuse: { maxSilentMs: 300 } });
    const ev = events(guarded);
    await guarded.query('SELECT 1');
    busyWait(500);
    await tally(guarded, { ok: 0, failed: [] });
    expect(guardStats(guarded)).toMatchObject({ checked: 1, rejected: 1, rejectedByReason: { silent: 1 } });
    await waitFor(() => ev.remove === 1, 5000, 'the silent client to be removed');
    expect(ev.releaseErrors[0]).toMatchObject({ code: 'ERR_SOCKSTATE_EVICTED', reason: 'silent' });
    // A fresh client answers at once: no eviction.
    await tally(guarded, { ok: 0, failed: [] });
    expect(guardStats(guarded)).toMatchObject({ checked: 2, rejected: 1 });
    expect(guarded.totalCount).toBe(1);
  });

  it("pool.end() from an 'acquire' listener while the guard evicts: every waiting query settles, as stock pg's fails with the server's error", async () => {
    const options = '-c idle_session_timeout=1000';
    const stock = newPool({ options, application_name: 'end-stock' });
    const guarded = guardPool(newPool({ options, application_name: 'end-guarded' }));
    events(stock);
    events(guarded);
    await Promise.all([stock.query('SELECT 1'), guarded.query('SELECT 1')]);
    busyWait(1100);
    server.sessionsGoneSync(['end-stock', 'end-guarded']);
    const ended: Promise<void>[] = [];
    for (const pool of [stock, guarded]) pool.once('acquire', () => ended.push(pool.end()));
    const outcome = (query: Promise<unknown>) => {
      const o: { settled: boolean; error?: Error & { cause?: unknown } } = { settled: false };
      query.then(
        () => (o.settled = true),
        (err: Error) => {
          o.settled = true;
          o.error = err;
        },
      );
      return o;
    };
    // Two waiting on the guarded pool's one idle client.
    const s = outcome(stock.query('SELECT 1'));
    const g = [outcome(guarded.query('SELECT 1')), outcome(guarded.query('SELECT 2'))];
    await waitFor(() => ended.length === 2, 5000, 'both pools to be ended');
    await Promise.all(ended);
    // Nothing is left to settle them later: an ended pool hands out nothing.
    await new Promise((resolve) => setImmediate(resolve));
    expect(s).toMatchObject({ settled: true, error: { message: 'terminating connection due to idle-session timeout' } });
    for (const o of g) {
      expect(o).toMatchObject({ settled: true, error: { message: 'Cannot use a pool after calling end on the pool' } });
      expect(o.error!.cause).toMatchObject({ code: 'ERR_SOCKSTATE_EVICTED', reason: 'dataPending' });
    }
    expect([stock.ended, guarded.ended]).toEqual([true, true]);
    expect(guardStats(guarded)).toMatchObject({ checked: 1, rejected: 1 });
  });

  it('the promise and callback forms of connect() are both guarded', async () => {
    const options = '-c idle_session_timeout=500';
    const guarded = guardPool(newPool({ options, application_name: 'forms' }));
    events(guarded);
    (await guarded.connect()).release();
    busyWait(600);
    server.sessionsGoneSync(['forms']);
    const client = await guarded.connect();
    expect((await client.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    client.release();
    busyWait(600);
    server.sessionsGoneSync(['forms']);
    const viaCallback = await new Promise<number>((resolve, reject) => {
      guarded.connect((err, c, release) => {
        if (err) return reject(err);
        c!.query('SELECT 3 AS three', (qerr, res) => {
          release();
          if (qerr) reject(qerr);
          else resolve(res.rows[0].three as number);
        });
      });
    });
    expect(viaCallback).toBe(3);
    expect(guardStats(guarded)).toMatchObject({ rejected: 2 });
  });
});

describe('sockstate/pg: arguments, and clients without a socket', () => {
  it('loads no driver: neither the core, sockstate/pg nor sockstate/pool requires pg, pg-pool, knex, generic-pool or mysql2', () => {
    // The built package, in a fresh process, as users load it.
    const lib = path.join(__dirname, '..', 'lib');
    const script =
      `for (const m of ['index.js', 'integrations/pg.js', 'integrations/pool.js']) require(require('path').join(${JSON.stringify(lib)}, m));` +
      "console.log(JSON.stringify(Object.keys(require.cache).filter((k) => /node_modules[\\/](pg|pg-pool|knex|generic-pool|mysql2)[\\/]/.test(k))));";
    expect(JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }))).toEqual([]);
  });

  it('rejects what is not a pg.Pool, and bad options', () => {
    expect(caught(() => guardPool(null as unknown as object))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(caught(() => guardPool({}))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    const pool = new pg.Pool({ host: '127.0.0.1', port: 1 });
    expect(caught(() => guardPool(pool, 5 as never))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    const bad = caught(() => guardPool(pool, { reuse: { maxSilentMs: -1 } }));
    expect(bad).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    expect(bad.message).toContain('"options.reuse.maxSilentMs"');
    expect(caught(() => guardPool(pool, { reuse: { unreadData: 'notice' as never } }))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(caught(() => guardPool(pool, { reuse: { unreadData: 1 as never } }))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    // Inherited options are not the caller's.
    const inherited = Object.create({ reuse: { maxSilentMs: -1 } });
    expect(guardPool(pool, inherited)).toBe(pool);
    expect(guardStats(pool)).toEqual({ checked: 0, rejected: 0, rejectedByReason: { closed: 0, dataPending: 0, stalled: 0, silent: 0 }, unchecked: 0, lastProbeError: null });
    expect(guardStats(new pg.Pool())).toBeNull();
    void pool.end();
  });

  it('passes through, unchecked and counted, clients with no socket (as pg-native\'s, where libpq owns it)', async () => {
    // A client shaped like pg-native's: no `connection`, queries answered in-process.
    class SocketlessClient extends EventEmitter {
      _queryable = true;
      _ending = false;
      connect(cb: (err?: Error) => void): void {
        setImmediate(() => cb());
      }
      query(_text: string, _values: unknown, cb: (err: Error | undefined, res: { rows: unknown[] }) => void): void {
        setImmediate(() => cb(undefined, { rows: [{ ok: true }] }));
      }
      end(cb?: () => void): void {
        this._ending = true;
        setImmediate(() => {
          this.emit('end');
          cb?.();
        });
      }
      ref(): void {}
      unref(): void {}
    }
    const pool = guardPool(new pg.Pool({ Client: SocketlessClient as never, max: 1 }));
    for (let i = 0; i < 3; i++) expect((await pool.query('SELECT')).rows).toEqual([{ ok: true }]);
    expect(guardStats(pool)).toMatchObject({ checked: 0, rejected: 0, unchecked: 2 });
    await pool.end();
  });
});
