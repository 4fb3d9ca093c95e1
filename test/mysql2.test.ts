import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import * as tls from 'node:tls';
import { promisify } from 'node:util';
import * as mysql from 'mysql2';
import * as mysqlPromise from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionChannel, reuseCheckChannel, type ConnectionMessage, type ReuseCheckMessage } from '../src/policy/channel';
import { guardPool, guardStats } from '../src/integrations/mysql2';
import { isReusable } from '../src/policy/reuse';
import { caught } from './helpers/errors';
import { type MariaDB, mariadbAvailable, startMariaDB } from './helpers/mariadb';
import { makeCertificate } from './helpers/tls';
import { busyWait, sleep, waitFor } from './helpers/sockets';

// mysql2 takes a free connection synchronously: a connection the server
// closed while the event loop was busy is handed out before libuv sees the
// close. These tests reproduce that with the stock pools and show the
// guarded ones avoid it, with exact counts, against a real MariaDB.

type CallbackPool = mysql.Pool;
type PromisePool = mysqlPromise.Pool;
type AnyPool = CallbackPool | PromisePool;
type Api = 'query' | 'execute' | 'getConnection';

interface InternalConnection {
  threadId: number;
  stream: net.Socket;
}
interface InternalPool {
  _freeConnections: { length: number; get(i: number): InternalConnection };
  _allConnections: { length: number; get(i: number): InternalConnection };
}

function isPromisePool(pool: AnyPool): pool is PromisePool {
  return 'pool' in pool;
}
function corePool(pool: AnyPool): CallbackPool {
  return isPromisePool(pool) ? (pool as unknown as { pool: CallbackPool }).pool : pool;
}
function internals(pool: AnyPool): InternalPool {
  return corePool(pool) as unknown as InternalPool;
}
function freeConnections(pool: AnyPool): InternalConnection[] {
  const free = internals(pool)._freeConnections;
  return Array.from({ length: free.length }, (_, i) => free.get(i));
}

/** The error code of one query through `api` (null when it succeeds). */
async function run(pool: AnyPool, api: Api, sql = 'SELECT 1 AS one'): Promise<string | null> {
  const code = (err: unknown) => String((err as { code?: unknown }).code);
  if (isPromisePool(pool)) {
    try {
      if (api === 'getConnection') {
        const conn = await pool.getConnection();
        try {
          await conn.query(sql);
        } finally {
          conn.release();
        }
      } else {
        await (api === 'query' ? pool.query(sql) : pool.execute(sql));
      }
      return null;
    } catch (err) {
      return code(err);
    }
  }
  const cb = pool as CallbackPool;
  return new Promise((resolve) => {
    const done = (err: unknown) => resolve(err ? code(err) : null);
    if (api === 'getConnection') {
      cb.getConnection((err, conn) => {
        if (err) return done(err);
        conn.query(sql, (qerr) => {
          conn.release();
          done(qerr);
        });
      });
    } else if (api === 'query') {
      cb.query(sql, done);
    } else {
      cb.execute(sql, done);
    }
  });
}

function end(pool: AnyPool): Promise<void> {
  return new Promise((resolve) => corePool(pool).end(() => resolve()));
}

/** The stats a guard with no probe failures and no unseen sockets reports. */
function stats(checked: number, reasons: Partial<Record<'closed' | 'dataPending' | 'stalled' | 'silent', number>> = {}) {
  const rejectedByReason = { closed: 0, dataPending: 0, stalled: 0, silent: 0, ...reasons };
  const rejected = Object.values(rejectedByReason).reduce((a, b) => a + b, 0);
  return { checked, rejected, rejectedByReason, unchecked: 0, lastProbeError: null };
}

interface Subject {
  name: string;
  pool: AnyPool;
  api: Api;
  guarded: boolean;
  failures: string[];
}

/** One stock and one guarded pool per API, callback and promise, each with connectionLimit 1. */
function subjects(db: MariaDB): Subject[] {
  const out: Subject[] = [];
  for (const guarded of [false, true]) {
    for (const flavour of ['callback', 'promise'] as const) {
      for (const api of ['query', 'execute', 'getConnection'] as const) {
        const options = { host: db.host, port: db.port, user: db.user, connectionLimit: 1 };
        const pool: AnyPool = flavour === 'callback' ? mysql.createPool(options) : mysqlPromise.createPool(options);
        if (guarded) guardPool(pool);
        out.push({ name: `${guarded ? 'guarded' : 'stock'} ${flavour} ${api}`, pool, api, guarded, failures: [] });
      }
    }
  }
  return out;
}

/**
 * Kills the connections' server threads from another process while this
 * one's event loop stays blocked, and keeps it blocked until the kernel
 * shows every one of them closed: mysql2 has not seen any of it.
 */
function killWhileBusy(db: MariaDB, connections: InternalConnection[]): void {
  db.adminSync(connections.map((c) => `KILL ${c.threadId};`).join(' '));
  const deadline = Date.now() + 10_000;
  while (connections.some((c) => isReusable(c.stream))) {
    if (Date.now() > deadline) throw new Error('the server did not close the killed connections within 10 s');
  }
}

/**
 * Rounds of: one query per pool with the loop free (so each holds one live
 * free connection), then `spoil()` blocking the loop while the server drops
 * those connections, then one query per pool issued in that same tick.
 */
async function rounds(list: Subject[], count: number, spoil: (connections: InternalConnection[]) => void): Promise<void> {
  for (let round = 0; round < count; round++) {
    const warm = await Promise.all(list.map((s) => run(s.pool, s.api)));
    expect(warm).toEqual(list.map(() => null));
    for (const s of list) expect(freeConnections(s.pool)).toHaveLength(1);
    // From a timer, as a busy server's next request would be.
    await sleep(10);
    spoil(list.map((s) => freeConnections(s.pool)[0]!));
    const codes = await Promise.all(list.map((s) => run(s.pool, s.api)));
    codes.forEach((code, i) => {
      if (code !== null) list[i]!.failures.push(code);
    });
  }
}

const available = mariadbAvailable();

describe.skipIf(!available)('sockstate/mysql2 with MariaDB, wait_timeout=1', () => {
  let db: MariaDB;
  beforeAll(async () => {
    db = await startMariaDB({ waitTimeout: 1 });
  }, 60_000);
  afterAll(async () => {
    await db?.stop();
  });

  it('stock pools fail every reuse after the server timed the connection out during a busy loop; guarded pools never', async () => {
    const list = subjects(db);
    try {
      await rounds(list, 3, () => busyWait(2600));
      for (const s of list) {
        if (s.guarded) {
          expect({ name: s.name, failures: s.failures }).toEqual({ name: s.name, failures: [] });
          expect(guardStats(s.pool)).toEqual(stats(5, { closed: 3 }));
        } else {
          // MariaDB resets the connection; writing the query meets the RST.
          expect({ name: s.name, failures: s.failures }).toEqual({ name: s.name, failures: ['ECONNRESET', 'ECONNRESET', 'ECONNRESET'] });
        }
      }
    } finally {
      await Promise.all(list.map((s) => end(s.pool)));
    }
  }, 60_000);
});

describe.skipIf(!available)('sockstate/mysql2 with MariaDB', () => {
  let db: MariaDB;
  beforeAll(async () => {
    db = await startMariaDB();
  }, 60_000);
  afterAll(async () => {
    await db?.stop();
  });

  it('stock pools fail every reuse of a connection KILLed while the loop is busy; guarded pools never', async () => {
    const list = subjects(db);
    try {
      await rounds(list, 3, (connections) => killWhileBusy(db, connections));
      for (const s of list) {
        if (s.guarded) {
          expect({ name: s.name, failures: s.failures }).toEqual({ name: s.name, failures: [] });
          expect(guardStats(s.pool)).toEqual(stats(5, { closed: 3 }));
        } else {
          // A KILLed idle connection gets a FIN and no packet: the query
          // goes out and the driver meets the end of stream instead of a reply.
          const lost = 'PROTOCOL_CONNECTION_LOST';
          expect({ name: s.name, failures: s.failures }).toEqual({ name: s.name, failures: [lost, lost, lost] });
        }
      }
    } finally {
      await Promise.all(list.map((s) => end(s.pool)));
    }
  }, 60_000);

  it('checkout moves past rejected connections to the next free one before opening a new one', async () => {
    for (const flavour of ['callback', 'promise'] as const) {
      const options = { host: db.host, port: db.port, user: db.user, connectionLimit: 3 };
      const pool: AnyPool = guardPool(flavour === 'callback' ? mysql.createPool(options) : mysqlPromise.createPool(options));
      let opened = 0;
      corePool(pool).on('connection', () => opened++);
      try {
        // Three at once: three connections, then all three free.
        expect(await Promise.all([1, 2, 3].map(() => run(pool, 'query', 'SELECT SLEEP(0.05)')))).toEqual([null, null, null]);
        const free = freeConnections(pool);
        expect(free).toHaveLength(3);
        await sleep(10);
        // mysql2 takes the most recently freed first: kill those two.
        killWhileBusy(db, free.slice(1));
        const id = await new Promise<number>((resolve, reject) =>
          corePool(pool).query('SELECT CONNECTION_ID() AS id', (err, rows) => (err ? reject(err) : resolve((rows as { id: number }[])[0]!.id))),
        );
        expect(id).toBe(free[0]!.threadId);
        expect(opened).toBe(3);
        expect(internals(pool)._allConnections.length).toBe(1);
        expect(guardStats(pool)).toEqual(stats(3, { closed: 2 }));
      } finally {
        await end(pool);
      }
    }
  });

  it('over a Unix socket (socketPath) as well: the stock pool fails, the guarded pool does not', async () => {
    const list: Subject[] = [false, true].map((guarded) => {
      const pool = mysql.createPool({ socketPath: db.socketPath, user: db.user, connectionLimit: 1 });
      if (guarded) guardPool(pool);
      return { name: guarded ? 'guarded' : 'stock', pool, api: 'query', guarded, failures: [] };
    });
    try {
      await rounds(list, 3, (connections) => killWhileBusy(db, connections));
      // Writing to a Unix socket whose peer has closed fails at once.
      expect(list.map((s) => s.failures)).toEqual([['EPIPE', 'EPIPE', 'EPIPE'], []]);
      expect(guardStats(list[1]!.pool)).toEqual(stats(5, { closed: 3 }));
    } finally {
      await Promise.all(list.map((s) => end(s.pool)));
    }
  });

  it('healthy connections are reused and none is evicted over 200 queries, sequential and 5 at a time', async () => {
    const options = { host: db.host, port: db.port, user: db.user, connectionLimit: 5 };
    const callbackPool = guardPool(mysql.createPool(options));
    const promisePool = guardPool(mysqlPromise.createPool(options));
    const apis: Api[] = ['query', 'execute', 'getConnection'];
    try {
      for (const pool of [callbackPool, promisePool]) {
        const opened: InternalConnection[] = [];
        corePool(pool).on('connection', (c) => opened.push(c as unknown as InternalConnection));
        const codes: (string | null)[] = [];
        for (let i = 0; i < 200; i++) codes.push(await run(pool, apis[i % 3]!));
        expect(codes).toEqual(Array(200).fill(null));
        // One connection carried all 200; 199 checkouts found it free.
        expect(opened).toHaveLength(1);
        expect(guardStats(pool)).toEqual(stats(199));
        for (let i = 0; i < 40; i++) {
          const batch = await Promise.all(apis.concat(apis).slice(0, 5).map((api) => run(pool, api)));
          expect(batch).toEqual([null, null, null, null, null]);
        }
        expect(opened.length).toBeLessThanOrEqual(5);
        // Every checkout that found a free connection checked it.
        expect(guardStats(pool)).toEqual(stats(199 + 200 - (opened.length - 1)));
      }
    } finally {
      await Promise.all([end(callbackPool), end(promisePool)]);
    }
  });

  it('20 parallel queries on a pool of 5 while the server kills random connections: each succeeds or fails with the server\'s error, none hangs', async () => {
    const pool = guardPool(mysqlPromise.createPool({ host: db.host, port: db.port, user: db.user, connectionLimit: 5 }));
    const outcomes = new Map<string, number>();
    let kills = 0;
    const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
    const settle = (query: Promise<unknown>) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          count('hung');
          resolve();
        }, 15_000);
        query.then(
          () => count('ok'),
          (err: { code?: string }) => count(String(err.code)),
        ).finally(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    try {
      for (let round = 0; round < 5; round++) {
        const queries = Array.from({ length: 20 }, () => settle(pool.query('SELECT SLEEP(0.1) AS s, CONNECTION_ID() AS id')));
        const killer = (async () => {
          for (let k = 0; k < 3; k++) {
            await sleep(15 + Math.floor(Math.random() * 30));
            const ids = await db.admin(
              "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'root' AND ID <> CONNECTION_ID() AND COMMAND = 'Query'",
            );
            if (ids.length === 0) continue;
            try {
              await db.admin(`KILL ${ids[Math.floor(Math.random() * ids.length)]}`);
              kills++;
            } catch (err) {
              // The connection ended between the two statements.
              if (!/Unknown thread id/.test((err as Error).message)) throw err;
            }
          }
        })();
        await Promise.all([...queries, killer]);
      }
      const total = [...outcomes.values()].reduce((a, b) => a + b, 0);
      expect(total).toBe(100);
      expect(outcomes.get('hung')).toBeUndefined();
      // MariaDB 10.11 closes a KILLed connection without an error packet:
      // the query running on it ends with PROTOCOL_CONNECTION_LOST (other
      // servers send ER_CONNECTION_KILLED first).
      const failures = [...outcomes].filter(([what]) => what !== 'ok');
      for (const [what] of failures) expect(['ER_CONNECTION_KILLED', 'PROTOCOL_CONNECTION_LOST']).toContain(what);
      const failed = failures.reduce((a, [, n]) => a + n, 0);
      // One query at a time per connection: a kill fails at most one.
      expect(kills).toBeGreaterThan(0);
      expect(failed).toBeLessThanOrEqual(kills);
      // The pool recovered within its limit.
      expect(await run(pool, 'query')).toBeNull();
      expect(internals(pool)._allConnections.length).toBeLessThanOrEqual(5);
    } finally {
      await end(pool);
    }
  }, 120_000);

  it("the driver's own 'error' events and query errors still fire on a guarded pool", async () => {
    const seen: Record<string, string[]> = {};
    for (const guarded of [false, true]) {
      const name = guarded ? 'guarded' : 'stock';
      const events: string[] = (seen[name] = []);
      const pool = mysql.createPool({ host: db.host, port: db.port, user: db.user, connectionLimit: 2 });
      if (guarded) guardPool(pool);
      pool.on('connection', (c) => c.on('error', (err: { code?: string }) => events.push(`connection error ${err.code}`)));
      try {
        // A query killed while it runs: the server's own error reaches its callback.
        const running = await new Promise<mysql.PoolConnection>((resolve, reject) => pool.getConnection((err, c) => (err ? reject(err) : resolve(c))));
        const killed = new Promise<string>((resolve) => running.query('SELECT SLEEP(10)', (err) => resolve(`query ${err?.code}`)));
        await sleep(100);
        await db.admin(`KILL ${running.threadId}`);
        events.push(await killed);
        running.release();
        // An idle pooled connection killed while the loop is free: the
        // driver sees the close itself, emits 'error' and the pool drops it.
        expect(await run(pool, 'query')).toBeNull();
        const idle = freeConnections(pool);
        expect(idle).toHaveLength(1);
        const before = events.length;
        await db.admin(`KILL ${idle[0]!.threadId}`);
        await waitFor(() => events.length > before, 5000, "the driver's 'error' event");
        await waitFor(() => internals(pool)._allConnections.length === 0, 5000, 'the pool to drop the connection');
        expect(await run(pool, 'query')).toBeNull();
        // Every connection here was new at its checkout: nothing to check.
        if (guarded) expect(guardStats(pool)).toEqual(stats(0));
      } finally {
        await end(pool);
      }
    }
    // The driver reports a KILL as the end of the stream: to the query
    // that was running, and as an 'error' event on an idle connection
    // (the running one left the pool at 'end', before the error).
    const expected = ['query PROTOCOL_CONNECTION_LOST', 'connection error PROTOCOL_CONNECTION_LOST'];
    expect(seen).toEqual({ stock: expected, guarded: expected });
  });

  it('a connection released straight to a waiting request is checked too; pool events and limits stay right', async () => {
    const results: Record<string, unknown> = {};
    for (const guarded of [false, true]) {
      const pool = mysql.createPool({ host: db.host, port: db.port, user: db.user, connectionLimit: 1 });
      if (guarded) guardPool(pool);
      const events: Record<string, number> = { acquire: 0, release: 0, connection: 0, enqueue: 0 };
      for (const name of Object.keys(events)) pool.on(name as 'acquire', () => events[name]!++);
      try {
        const held = await new Promise<mysql.PoolConnection>((resolve, reject) => pool.getConnection((err, c) => (err ? reject(err) : resolve(c))));
        const waiter = run(pool, 'getConnection');
        expect(events.enqueue).toBe(1);
        await sleep(10);
        killWhileBusy(db, [held as unknown as InternalConnection]);
        held.release();
        const code = await waiter;
        results[guarded ? 'guarded' : 'stock'] = {
          code,
          events: { ...events },
          connections: internals(pool)._allConnections.length,
          ...(guarded ? { stats: guardStats(pool) } : {}),
        };
      } finally {
        await end(pool);
      }
    }
    expect(results).toEqual({
      // mysql2 hands the released connection straight to the waiter
      // (no 'acquire', no 'release'); the query meets the closed stream.
      stock: { code: 'PROTOCOL_CONNECTION_LOST', events: { acquire: 1, release: 0, connection: 1, enqueue: 1 }, connections: 0 },
      // The guard destroys it instead; the freed slot opens a new
      // connection for the waiter, whose query succeeds and releases it.
      guarded: {
        code: null,
        events: { acquire: 2, release: 1, connection: 2, enqueue: 1 },
        connections: 1,
        stats: stats(1, { closed: 1 }),
      },
    });
  });

  it('with reuse.maxSilentMs, a connection whose peer has been silent too long is replaced', async () => {
    // Guarded plainly first: guarding again sets the options.
    const pool = guardPool(guardPool(mysql.createPool({ host: db.host, port: db.port, user: db.user, connectionLimit: 1 })), {
      reuse: { maxSilentMs: 1000 },
    });
    let opened = 0;
    pool.on('connection', () => opened++);
    try {
      expect(await run(pool, 'query')).toBeNull();
      expect(await run(pool, 'query')).toBeNull();
      expect(guardStats(pool)).toEqual(stats(1));
      // MariaDB sends nothing to an idle client, and no keepalive is set.
      await sleep(2500);
      expect(await run(pool, 'execute')).toBeNull();
      expect(guardStats(pool)).toEqual(stats(2, { silent: 1 }));
      expect(opened).toBe(2);
    } finally {
      await end(pool);
    }
  });

  it('publishes each check and each new connection with the pool the user holds as owner', async () => {
    const checks: ReuseCheckMessage[] = [];
    const connections: ConnectionMessage[] = [];
    const onCheck = (m: unknown) => checks.push(m as ReuseCheckMessage);
    const onConnection = (m: unknown) => connections.push(m as ConnectionMessage);
    reuseCheckChannel.subscribe(onCheck);
    connectionChannel.subscribe(onConnection);
    const pool = guardPool(mysqlPromise.createPool({ host: db.host, port: db.port, user: db.user, connectionLimit: 2 }));
    try {
      for (let i = 0; i < 3; i++) expect(await run(pool, 'query')).toBeNull();
      const mine = checks.filter((m) => m.owner === pool);
      expect(mine).toEqual([
        { owner: pool, reusable: true, reason: 'idle' },
        { owner: pool, reusable: true, reason: 'idle' },
      ]);
      const opened = connections.filter((m) => m.owner === pool);
      expect(opened).toHaveLength(1);
      expect(opened[0]!.socket).toBe(freeConnections(pool)[0]!.stream);

      // A pool guarded after it opened a connection announces that one at
      // once, and only once.
      const late = mysql.createPool({ host: db.host, port: db.port, user: db.user, connectionLimit: 2 });
      try {
        expect(await run(late, 'query')).toBeNull();
        const existing = freeConnections(late)[0]!.stream;
        guardPool(late);
        for (let i = 0; i < 2; i++) expect(await run(late, 'query')).toBeNull();
        expect(connections.filter((m) => m.owner === late)).toEqual([{ owner: late, socket: existing }]);
      } finally {
        await end(late);
      }
    } finally {
      reuseCheckChannel.unsubscribe(onCheck);
      connectionChannel.unsubscribe(onConnection);
      await end(pool);
    }
  });
});

describe('sockstate/mysql2 arguments', () => {
  const options = { host: '127.0.0.1', port: 9, user: 'root' };

  it('refuses what is not a mysql2 pool, and bad options, with coded errors', async () => {
    const pool = mysql.createPool(options);
    try {
      for (const bad of [undefined, null, 5, 'pool', mysql.createConnection]) {
        const err = caught(() => guardPool(bad as never));
        expect(err).toBeInstanceOf(TypeError);
        expect([err.code, err.message.includes('"pool" argument')]).toEqual(['ERR_INVALID_ARG_TYPE', true]);
      }
      for (const bad of [{}, { getConnection() {} }, mysql.createPoolCluster()]) {
        const err = caught(() => guardPool(bad));
        expect(err).toBeInstanceOf(TypeError);
        expect([err.code, err.message.includes("argument 'pool' is not a pool")]).toEqual(['ERR_INVALID_ARG_VALUE', true]);
      }
      const notObject = caught(() => guardPool(pool, 'x' as never));
      expect([notObject.code, notObject.message.includes('"options" argument')]).toEqual(['ERR_INVALID_ARG_TYPE', true]);
      const reuse = caught(() => guardPool(pool, { reuse: 5 as never }));
      expect([reuse.code, reuse.message.includes('"options.reuse" argument')]).toEqual(['ERR_INVALID_ARG_TYPE', true]);
      const range = caught(() => guardPool(pool, { reuse: { maxSilentMs: -1 } }));
      expect(range).toBeInstanceOf(RangeError);
      expect([range.code, range.message.includes('"options.reuse.maxSilentMs"')]).toEqual(['ERR_OUT_OF_RANGE', true]);
      const stalled = caught(() => guardPool(pool, { reuse: { allowStalled: 'yes' as never } }));
      expect(stalled.code).toBe('ERR_INVALID_ARG_TYPE');
      const unread = caught(() => guardPool(pool, { reuse: { unreadData: 'notice' as never } }));
      expect(unread).toBeInstanceOf(TypeError);
      expect([unread.code, unread.message.includes("'options.reuse.unreadData'")]).toEqual(['ERR_INVALID_ARG_VALUE', true]);
      // Nothing was installed by the refused calls.
      expect(Object.prototype.hasOwnProperty.call(pool, 'getConnection')).toBe(false);
      expect(guardStats(pool)).toBeNull();
      const notPool = caught(() => guardStats(5 as never));
      expect([notPool.code, notPool.message.includes('"pool" argument')]).toEqual(['ERR_INVALID_ARG_TYPE', true]);
    } finally {
      await end(pool);
    }
  });

  it('hands out unchecked, and counts, a connection it cannot see into', async () => {
    // No server: free connections are placed in the pool by hand, as mysql2
    // keeps them, to reach what a real pool rarely shows.
    const pool = guardPool(mysql.createPool(options));
    const internal = corePool(pool) as unknown as {
      _freeConnections: { push(c: unknown): void; length: number };
      _allConnections: { push(c: unknown): void };
    };
    const checkout = () =>
      new Promise<unknown>((resolve, reject) => pool.getConnection((err, c) => (err ? reject(err) : resolve(c))));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-mysql2-'));
    let fifoSocket: net.Socket | undefined;
    try {
      // mysql2's `stream` option with a duplex that is not a socket.
      const ends = (cb: () => void) => cb();
      const custom = { stream: new PassThrough(), _pool: pool, destroy() {}, _realEnd: ends };
      internal._allConnections.push(custom);
      internal._freeConnections.push(custom);
      expect(await checkout()).toBe(custom);
      expect(guardStats(pool)).toEqual({ ...stats(0), unchecked: 1 });

      // A net.Socket over a FIFO: the kernel refuses to probe it (ENOTSOCK).
      const fifo = path.join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      fifoSocket = new net.Socket({ fd: fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK) });
      const overFifo = { stream: fifoSocket, _pool: pool, destroy() {}, _realEnd: ends };
      internal._allConnections.push(overFifo);
      internal._freeConnections.push(overFifo);
      expect(await checkout()).toBe(overFifo);
      const after = guardStats(pool)!;
      expect({ ...after, lastProbeError: null }).toEqual({ ...stats(0), unchecked: 2 });
      expect((after.lastProbeError as Error & { code?: string }).code).toBe('ENOTSOCK');
    } finally {
      fifoSocket?.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
      await end(pool);
    }
  });

  it('reads only its own options, returns the same pool, and guards once', async () => {
    const pool = mysql.createPool(options);
    const promisePool = mysqlPromise.createPool(options);
    try {
      // An inherited `reuse` is not the caller's option (it would throw).
      expect(guardPool(pool, Object.create({ reuse: { maxSilentMs: -1 } }))).toBe(pool);
      const guarded = pool.getConnection;
      expect(guardPool(pool, { reuse: {} })).toBe(pool);
      // Guarding again replaces the options, not the guard.
      expect(pool.getConnection).toBe(guarded);
      expect(guardStats(pool)).toEqual(stats(0));
      expect(guardPool(promisePool)).toBe(promisePool);
      expect(guardStats(promisePool)).toEqual(guardStats(corePool(promisePool)));
    } finally {
      await Promise.all([end(pool), end(promisePool)]);
    }
  });

  it('loads no mysql2 of its own', async () => {
    const root = path.join(__dirname, '..');
    const { stdout } = await promisify(execFile)(process.execPath, [
      '-e',
      "require('./lib/integrations/mysql2'); process.stdout.write(String(Object.keys(require.cache).filter((k) => k.includes('/node_modules/mysql2/')).length))",
    ], { cwd: root });
    expect(stdout).toBe('0');
  });
});

describe.skipIf(!available)('sockstate/mysql2 with MariaDB over TLS', () => {
  let db: MariaDB;
  let cert: Buffer;
  beforeAll(async () => {
    const pair = makeCertificate();
    cert = pair.cert;
    db = await startMariaDB({ tls: pair });
  }, 60_000);
  afterAll(async () => {
    await db?.stop();
  });

  it('checks the TLS socket mysql2 switches to: the stock pool fails, the guarded pool does not', async () => {
    const list: Subject[] = [false, true].map((guarded) => {
      const pool = mysql.createPool({ host: db.host, port: db.port, user: db.user, connectionLimit: 1, ssl: { ca: cert } });
      if (guarded) guardPool(pool);
      return { name: guarded ? 'guarded' : 'stock', pool, api: 'query', guarded, failures: [] };
    });
    try {
      await rounds(list, 3, (connections) => {
        for (const c of connections) expect(c.stream).toBeInstanceOf(tls.TLSSocket);
        killWhileBusy(db, connections);
      });
      const lost = 'PROTOCOL_CONNECTION_LOST';
      expect(list.map((s) => s.failures)).toEqual([[lost, lost, lost], []]);
      // The server's close_notify before its FIN does not count as data.
      expect(guardStats(list[1]!.pool)).toEqual(stats(5, { closed: 3 }));
    } finally {
      await Promise.all(list.map((s) => end(s.pool)));
    }
  });
});
