import * as diagnostics from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { createPool } from 'generic-pool';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REUSE_CHECK_CHANNEL, type ReuseCheckMessage } from '../src/policy/channel';
import { native } from '../src/probe/native';
import { createValidator, isConnectionReusable, socketOf } from '../src/integrations/pool';
import { caught } from './helpers/errors';
import { type Postgres, postgresAvailable, startPostgres } from './helpers/postgres';
import { busyWait, perTestCleanup } from './helpers/sockets';

// sockstate/pool's validator in knex (tarn) and generic-pool, with pg
// against a real PostgreSQL started here, stock and validated side by side.

const { cleanups, pair } = perTestCleanup();
const run = native !== null && postgresAvailable();

describe('sockstate/pool: finding the socket', () => {
  it('finds a pg Client\'s, a mysql2-shaped connection\'s and a net.Socket\'s socket, or says it cannot', async () => {
    const { client } = await pair();
    expect(socketOf(client)).toBe(client);
    // pg's Client keeps it at connection.stream, mysql2's Connection at stream,
    // mysql2's promise wrapper at connection.stream.
    expect(socketOf({ connection: { stream: client } })).toBe(client);
    expect(socketOf({ stream: client })).toBe(client);
    const pgClient = new pg.Client({ host: '127.0.0.1', port: 1 });
    expect(socketOf(pgClient)).toBe(pgClient.connection.stream);
    for (const unknown of [{}, { connection: null }, { stream: {} }, { connection: { stream: 'x' } }, new (class NativeClient {})()]) {
      const err = caught(() => socketOf(unknown));
      expect({ name: err.name, code: err.code }).toEqual({ name: 'SockstateError', code: 'ERR_SOCKSTATE_NO_SOCKET' });
    }
    expect(caught(() => socketOf(new (class NativeClient {})())).message).toContain('a NativeClient');
    expect(caught(() => socketOf(5 as unknown as object)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(caught(() => createValidator(null as never)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(caught(() => createValidator({ reuse: { maxSilentMs: 1.5 } })).code).toBe('ERR_OUT_OF_RANGE');
    expect(caught(() => createValidator({ owner: 5 as never })).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(caught(() => isConnectionReusable(client, { allowStalled: 'no' as never })).code).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('validates a socket by the one reuse rule, and counts what it rejected', async () => {
    const healthy = await pair();
    const closed = await pair();
    closed.peer.destroy();
    const deadline = Date.now() + 5000;
    while (isConnectionReusable(closed.client) && Date.now() < deadline) {
      // spin until the kernel has the FIN
    }
    const validate = createValidator();
    expect(validate(healthy.client)).toBe(true);
    expect(validate({ stream: closed.client })).toBe(false);
    expect(validate.stats).toEqual({
      checked: 2,
      rejected: 1,
      rejectedByReason: { closed: 1, dataPending: 0, stalled: 0, silent: 0 },
      unchecked: 0,
      lastProbeError: null,
    });
    busyWait(120);
    const strict = createValidator({ reuse: { maxSilentMs: 100 } });
    expect(strict(healthy.client)).toBe(false);
    expect(strict.stats.rejectedByReason.silent).toBe(1);
    expect(isConnectionReusable(healthy.client)).toBe(true);
    expect(isConnectionReusable(healthy.client, { maxSilentMs: 100 })).toBe(false);
    cleanups.push(() => net.Socket.prototype.destroy.call(healthy.client));
  });
});

/** A client shaped like pg-native's: no socket in sight (libpq owns it). */
class NativeClient {
  readonly native = true;
}

describe('sockstate/pool: a validator always answers', () => {
  it('never throws: a connection it cannot see into is passed as reusable, counted in unchecked with the reason', async () => {
    const validate = createValidator();
    const { client } = await pair();
    for (const connection of [new NativeClient(), {}, { stream: {} }, 5 as unknown as object, null as unknown as object]) {
      expect(validate(connection)).toBe(true);
    }
    expect(validate(client)).toBe(true);
    const stats = validate.stats;
    expect({ ...stats, lastProbeError: null }).toEqual({
      checked: 1,
      rejected: 0,
      rejectedByReason: { closed: 0, dataPending: 0, stalled: 0, silent: 0 },
      unchecked: 5,
      lastProbeError: null,
    });
    expect(stats.lastProbeError).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    validate(new NativeClient());
    expect(validate.stats.lastProbeError).toMatchObject({ name: 'SockstateError', code: 'ERR_SOCKSTATE_NO_SOCKET' });
  });

  for (const form of ['validate: createValidator()', 'validate: async (c) => validate(c)'] as const) {
    it(`generic-pool with testOnBorrow and ${form}: acquire() settles for a pg-native-like client`, async () => {
      const validate = createValidator();
      let created = 0;
      let destroyed = 0;
      const factory = {
        create: async () => {
          created += 1;
          return new NativeClient();
        },
        destroy: async () => {
          destroyed += 1;
        },
        validate: form === 'validate: createValidator()' ? (validate as unknown as (c: NativeClient) => Promise<boolean>) : async (c: NativeClient) => validate(c),
      };
      const pool = createPool(factory, { max: 1, testOnBorrow: true });
      try {
        for (let i = 0; i < 3; i++) {
          const resource = await pool.acquire();
          expect(resource).toBeInstanceOf(NativeClient);
          await pool.release(resource);
        }
        expect({ created, destroyed }).toEqual({ created: 1, destroyed: 0 });
        expect(validate.stats).toMatchObject({ checked: 0, rejected: 0, unchecked: 3, lastProbeError: { code: 'ERR_SOCKSTATE_NO_SOCKET' } });
      } finally {
        await pool.drain();
        await pool.clear();
      }
    });
  }
});

describe.runIf(run)('sockstate/pool with knex and generic-pool against PostgreSQL', () => {
  let server: Postgres;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });

  // idle_session_timeout 1 s for these sessions; the loop then stays busy 1.8 s.
  const options = '-c idle_session_timeout=1000';

  async function rounds(query: () => Promise<unknown>, n: number, applicationName: string): Promise<{ ok: number; failed: string[] }> {
    const result = { ok: 0, failed: [] as string[] };
    for (let i = 0; i < n; i++) {
      // Warm: one idle connection. A stock pool may first hand back the
      // connection the last round's failure left behind; the retry gets a new one.
      await query().catch(() => query());
      // Busy past the timeout, and on until the server has really ended the
      // session (however loaded the host): the pool can read nothing meanwhile.
      busyWait(1100);
      server.sessionsGoneSync([applicationName]);
      try {
        await query();
        result.ok += 1;
      } catch (err) {
        result.failed.push((err as Error).message);
      }
    }
    return result;
  }

  it('knex (client pg, tarn pool): 4 of 4 stock queries fail after the server\'s idle timeout, 0 of 4 validated', async () => {
    const connection = { ...server.config, options };
    // knex's warnings, collected: the stock pool's lost connections, and any
    // "Pool validate threw" (there must be none).
    const warnings: string[] = [];
    const log = { warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m), deprecate() {}, debug() {} };
    const stock: Knex = knexFactory({ client: 'pg', connection: { ...connection, application_name: 'knex-stock' }, pool: { min: 0, max: 1 }, log });
    const validate = createValidator();
    const validatedWarnings: string[] = [];
    const validated: Knex = knexFactory({
      client: 'pg',
      connection: { ...connection, application_name: 'knex-validated' },
      pool: { min: 0, max: 1, validate },
      log: { ...log, warn: (m: string) => validatedWarnings.push(m), error: (m: string) => validatedWarnings.push(m) },
    });
    try {
      const checks: ReuseCheckMessage[] = [];
      const onCheck = (m: unknown) => {
        if ((m as ReuseCheckMessage).owner === validate) checks.push(m as ReuseCheckMessage);
      };
      diagnostics.subscribe(REUSE_CHECK_CHANNEL, onCheck);
      const s = await rounds(() => stock.raw('SELECT 1'), 4, 'knex-stock');
      const v = await rounds(() => validated.raw('SELECT 1'), 4, 'knex-validated');
      diagnostics.unsubscribe(REUSE_CHECK_CHANNEL, onCheck);
      expect(s.ok).toBe(0);
      expect(s.failed).toHaveLength(4);
      for (const message of s.failed) expect(message).toContain('terminating connection due to idle-session timeout');
      expect(v).toEqual({ ok: 4, failed: [] });
      // tarn validates every acquire, new connections included: per round
      // the warm-up's, the dead one's (the server's FATAL unread) and its replacement's.
      expect(validate.stats).toEqual({
        checked: 12,
        rejected: 4,
        rejectedByReason: { closed: 0, dataPending: 4, stalled: 0, silent: 0 },
        unchecked: 0,
        lastProbeError: null,
      });
      expect(checks.map((c) => c.reason)).toEqual(Array(4).fill(['idle', 'dataPending', 'idle']).flat());
      expect(validatedWarnings.filter((w) => w.includes('Pool validate threw'))).toEqual([]);
    } finally {
      await stock.destroy();
      await validated.destroy();
    }
  }, 60_000);

  it('knex with a driver whose socket cannot be seen (as pg-native): queries run on the first connection, none is discarded', async () => {
    // A pg.Client behind a private field: the queries reach the server, the
    // socket stays out of sight, as with libpq.
    let created = 0;
    class HiddenSocketClient extends EventEmitter {
      readonly #inner: pg.Client;
      constructor(config: pg.ClientConfig) {
        super();
        created += 1;
        this.#inner = new pg.Client(config);
        this.#inner.on('error', (err) => this.emit('error', err));
        this.#inner.on('end', () => this.emit('end'));
      }
      async connect(): Promise<void> {
        await this.#inner.connect();
      }
      query(...args: unknown[]): unknown {
        return (this.#inner.query as (...a: unknown[]) => unknown)(...args);
      }
      end(cb?: (err?: Error) => void): unknown {
        return cb === undefined ? this.#inner.end() : this.#inner.end().then(() => cb(), cb);
      }
    }
    const PgDialect = knexFactory({ client: 'pg' }).client.constructor as new (config: Knex.Config) => Knex.Client;
    class HiddenSocketDialect extends PgDialect {
      _driver(): unknown {
        return { Client: HiddenSocketClient };
      }
    }
    const validate = createValidator();
    const warnings: string[] = [];
    const log = { warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m), deprecate() {}, debug() {} };
    const db: Knex = knexFactory({
      client: HiddenSocketDialect as unknown as typeof Knex.Client,
      connection: server.config,
      pool: { min: 0, max: 1, validate },
      acquireConnectionTimeout: 5000,
      log,
    });
    try {
      for (let i = 0; i < 3; i++) expect((await db.raw('SELECT ?::int AS n', [i])).rows).toEqual([{ n: i }]);
      expect(created).toBe(1);
      expect(warnings).toEqual([]);
      expect(validate.stats).toMatchObject({ checked: 0, rejected: 0, unchecked: 3, lastProbeError: { code: 'ERR_SOCKSTATE_NO_SOCKET' } });
    } finally {
      await db.destroy();
    }
  });

  it('knex: healthy connections pass, 200 queries on a pool of 5 with nothing rejected', async () => {
    const validate = createValidator();
    const db: Knex = knexFactory({ client: 'pg', connection: server.config, pool: { min: 0, max: 5, validate } });
    try {
      for (let i = 0; i < 40; i++) {
        const rows = await Promise.all(Array.from({ length: 5 }, (_, j) => db.raw('SELECT ?::int AS n', [j])));
        expect(rows.map((r) => r.rows[0].n)).toEqual([0, 1, 2, 3, 4]);
      }
      expect(validate.stats.rejected).toBe(0);
      expect(validate.stats.checked).toBeGreaterThanOrEqual(195);
    } finally {
      await db.destroy();
    }
  }, 60_000);

  it('generic-pool with testOnBorrow: the stock pool hands out the dead client, the validated one replaces it', async () => {
    const factory = {
      async create() {
        const client = new pg.Client({ ...server.config, options, application_name: 'generic-pool' });
        client.on('error', () => {});
        await client.connect();
        return client;
      },
      async destroy(client: pg.Client) {
        await client.end().catch(() => {});
      },
    };
    const stock = createPool(factory, { max: 1 });
    const validate = createValidator({ owner: {} });
    // generic-pool's types ask for a promise; the check itself stays synchronous.
    const validated = createPool({ ...factory, validate: async (client: pg.Client) => validate(client) }, { max: 1, testOnBorrow: true });
    const use = (pool: typeof stock) => pool.use((client) => client.query('SELECT 1'));
    try {
      const s = await rounds(() => use(stock), 3, 'generic-pool');
      const v = await rounds(() => use(validated), 3, 'generic-pool');
      expect(s.ok).toBe(0);
      expect(s.failed).toHaveLength(3);
      expect(v).toEqual({ ok: 3, failed: [] });
      // generic-pool validates every borrow, new connections included: per
      // round the warm-up's, the dead one's and its replacement's.
      expect(validate.stats).toEqual({
        checked: 9,
        rejected: 3,
        rejectedByReason: { closed: 0, dataPending: 3, stalled: 0, silent: 0 },
        unchecked: 0,
        lastProbeError: null,
      });
      expect({ size: validated.size, available: validated.available, borrowed: validated.borrowed }).toEqual({ size: 1, available: 1, borrowed: 0 });
    } finally {
      await stock.drain();
      await stock.clear();
      await validated.drain();
      await validated.clear();
    }
  }, 60_000);
});
