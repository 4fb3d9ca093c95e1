import type * as net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../src/probe/native';
import { guardPool, guardStats } from '../src/integrations/pg';
import { createValidator } from '../src/integrations/pool';
import { checkReusable } from '../src/policy/reuse';
import { type Postgres, postgresAvailable, startPostgres } from './helpers/postgres';

// PostgreSQL speaks unasked on healthy sessions: a NOTIFY reaches every
// idle client that ran LISTEN. What the stock pool delivers, the guarded
// pool (and the validator, for a pg Client) must deliver too; the
// server's goodbyes, which come with a FIN, are covered in pg.test.ts.

const run = native !== null && postgresAvailable();

interface PoolInternals {
  _idle: { client: { connection: { stream: net.Socket } } }[];
}

/** The socket of the pool's one idle client. */
function idleSocket(pool: pg.Pool): net.Socket {
  const idle = (pool as unknown as PoolInternals)._idle;
  expect(idle).toHaveLength(1);
  return idle[0]!.client.connection.stream;
}

/**
 * Blocks the loop until the kernel holds bytes pg has not read on each
 * socket: the server has sent what it sent, and no pool has seen it.
 */
function unreadSync(sockets: net.Socket[]): void {
  const deadline = Date.now() + 10_000;
  while (sockets.some((s) => checkReusable(s).state.unreadBytes === 0)) {
    if (Date.now() > deadline) throw new Error('the notification did not reach the kernel within 10 s');
  }
}

describe.runIf(run)('sockstate/pg: messages PostgreSQL sends unasked reach pg', () => {
  let server: Postgres;
  const pools: pg.Pool[] = [];
  beforeAll(async () => {
    server = await startPostgres({ ssl: true });
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => (p.ending ? undefined : p.end().catch(() => {}))));
    await server?.stop();
  });

  function newPool(extra: pg.PoolConfig): pg.Pool {
    const pool = new pg.Pool({ ...server.config, max: 1, idleTimeoutMillis: 0, ...extra });
    pool.on('error', () => {});
    pools.push(pool);
    return pool;
  }

  /** One LISTENing idle client in `pool`; its notifications' payloads land in the returned list. */
  async function listen(pool: pg.Pool, channel: string): Promise<string[]> {
    const payloads: string[] = [];
    const client = await pool.connect();
    client.on('notification', (n) => payloads.push(n.payload ?? ''));
    await client.query(`LISTEN ${channel}`);
    client.release();
    return payloads;
  }

  for (const overTls of [false, true]) {
    it(`a NOTIFY landing on an idle LISTEN client while the loop is busy: stock and guarded pools deliver 3 of 3, nothing evicted${overTls ? ', over TLS' : ''}`, async () => {
      const tls = overTls ? { ssl: { ca: server.cert!, servername: 'localhost' } } : {};
      const channel = overTls ? 'chan_tls' : 'chan';
      const stock = newPool({ ...tls, application_name: `notify-stock${overTls ? '-tls' : ''}` });
      const guarded = guardPool(newPool({ ...tls, application_name: `notify-guarded${overTls ? '-tls' : ''}` }));
      const removed = { stock: 0, guarded: 0 };
      stock.on('remove', () => (removed.stock += 1));
      guarded.on('remove', () => (removed.guarded += 1));
      const got = { stock: await listen(stock, channel), guarded: await listen(guarded, channel) };
      for (let round = 0; round < 3; round++) {
        // psql sends the NOTIFY while this loop is blocked; it stays
        // blocked until both notifications wait unread in the kernel.
        server.adminSync(`NOTIFY ${channel}, 'n${round}'`);
        const sockets = [idleSocket(stock), idleSocket(guarded)];
        unreadSync(sockets);
        for (const socket of sockets) {
          expect(checkReusable(socket).state).toMatchObject({ status: 'open', readClosed: false, pendingError: false });
        }
        // Checked out in this same tick: the guard sees the bytes before pg does.
        const [s, g] = await Promise.all([stock.query('SELECT 1 AS one'), guarded.query('SELECT 1 AS one')]);
        expect([s.rows, g.rows]).toEqual([[{ one: 1 }], [{ one: 1 }]]);
      }
      const all = ['n0', 'n1', 'n2'];
      expect(got).toEqual({ stock: all, guarded: all });
      expect(guardStats(guarded)).toEqual({
        checked: 3,
        rejected: 0,
        rejectedByReason: { closed: 0, dataPending: 0, stalled: 0, silent: 0 },
        unchecked: 0,
        lastProbeError: null,
      });
      expect(removed).toEqual({ stock: 0, guarded: 0 });
      expect([stock.totalCount, guarded.totalCount]).toEqual([1, 1]);
    }, 60_000);
  }

  it('the validator lets a pg Client with a notification waiting through, and still rejects one whose session ended', async () => {
    const validate = createValidator();
    const client = new pg.Client({ ...server.config, application_name: 'notify-validated' });
    client.on('error', () => {});
    const payloads: string[] = [];
    client.on('notification', (n) => payloads.push(n.payload ?? ''));
    await client.connect();
    try {
      await client.query('LISTEN chan_validated');
      server.adminSync("NOTIFY chan_validated, 'kept'");
      unreadSync([client.connection.stream as net.Socket]);
      expect(validate(client)).toBe(true);
      // pg reads it once the loop turns.
      expect((await client.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
      expect(payloads).toEqual(['kept']);
      // The server's goodbye (FATAL, then FIN) is still a goodbye.
      server.adminSync("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'notify-validated'");
      server.sessionsGoneSync(['notify-validated']);
      expect(validate(client)).toBe(false);
      expect(validate.stats).toMatchObject({ checked: 2, rejected: 1, rejectedByReason: { dataPending: 1 }, unchecked: 0 });
      // A caller that asks for 'goodbye' gets it.
      const strict = createValidator({ reuse: { unreadData: 'goodbye' } });
      const other = new pg.Client({ ...server.config });
      await other.connect();
      try {
        await other.query('LISTEN chan_strict');
        server.adminSync("NOTIFY chan_strict, 'x'");
        unreadSync([other.connection.stream as net.Socket]);
        expect(strict(other)).toBe(false);
        expect(strict.stats.rejectedByReason.dataPending).toBe(1);
      } finally {
        await other.end();
      }
    } finally {
      await client.end().catch(() => {});
    }
  });

  it('a config reload sends nothing to an idle session: ParameterStatus waits for its next command', async () => {
    // Evidence for the rule, measured: of the messages PostgreSQL sends
    // unasked, only notifications reach a session while it is idle.
    const client = new pg.Client({ ...server.config, application_name: 'reload' });
    await client.connect();
    const seen: string[] = [];
    client.on('notice', (n) => seen.push(`notice ${n.message}`));
    client.connection.on('parameterStatus', (m: { parameterName: string; parameterValue: string }) => seen.push(`${m.parameterName}=${m.parameterValue}`));
    const stream = client.connection.stream as net.Socket;
    try {
      server.adminSync("ALTER SYSTEM SET DateStyle = 'German, DMY'");
      server.adminSync('SELECT pg_reload_conf()');
      // The server has reloaded when a new session sees the new value.
      expect(server.adminSync('SHOW DateStyle').trim()).toBe('German, DMY');
      expect(checkReusable(stream).state.unreadBytes).toBe(0);
      expect(seen).toEqual([]);
      const { rows } = await client.query('SHOW DateStyle');
      expect(rows).toEqual([{ DateStyle: 'German, DMY' }]);
      // It came with the reply, not before.
      expect(seen).toEqual(['DateStyle=German, DMY']);
    } finally {
      server.adminSync('ALTER SYSTEM RESET DateStyle');
      server.adminSync('SELECT pg_reload_conf()');
      await client.end();
    }
  });
});
