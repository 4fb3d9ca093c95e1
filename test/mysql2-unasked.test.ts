import * as net from 'node:net';
import * as mysql from 'mysql2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guardPool, guardStats } from '../src/integrations/mysql2';
import { native } from '../src/probe/native';
import { checkReusable } from '../src/policy/reuse';
import { type MariaDB, mariadbAvailable, startMariaDB } from './helpers/mariadb';
import { busyWait, listen, sleep } from './helpers/sockets';

// What a MySQL server sends unasked, measured against MariaDB: the
// evidence for sockstate/mysql2 treating unread bytes on an idle
// connection as the server's goodbye.

interface Connection {
  threadId: number;
  stream: net.Socket;
  query(sql: string, cb: (err: unknown) => void): void;
  on(event: 'error', listener: (err: { code?: string }) => void): void;
  destroy(): void;
}

const run = native !== null && mariadbAvailable();

/** A connection that has answered one query; what arrives afterwards, and its errors, are recorded. */
async function open(db: MariaDB, setup: string[] = []): Promise<{ conn: Connection; received: Buffer[]; errors: string[] }> {
  const conn = mysql.createConnection({ host: db.host, port: db.port, user: db.user }) as unknown as Connection;
  const errors: string[] = [];
  conn.on('error', (err) => errors.push(String(err.code)));
  for (const sql of ['SELECT 1', ...setup]) await new Promise<void>((resolve, reject) => conn.query(sql, (err) => (err ? reject(err) : resolve())));
  const received: Buffer[] = [];
  conn.stream.prependListener('data', (chunk: Buffer) => received.push(Buffer.from(chunk)));
  return { conn, received, errors };
}

/** Resolves on the socket's 'close' (its 'error' is mysql2's to report). */
function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => (socket.destroyed && socket.closed ? resolve() : socket.once('close', () => resolve())));
}

/** Blocks the loop until the kernel shows the connection no longer reusable, then a moment more for the rest of the goodbye. */
function goneSync(socket: net.Socket, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (checkReusable(socket).reusable) {
    if (Date.now() > deadline) throw new Error(`still reusable after ${timeoutMs} ms`);
  }
  busyWait(100);
  const { reason, state } = checkReusable(socket);
  return { reason, status: state.status, unreadBytes: state.unreadBytes, pendingError: state.pendingError };
}

describe.runIf(run)('what MariaDB sends unasked to an idle connection', () => {
  let db: MariaDB;
  beforeAll(async () => {
    db = await startMariaDB();
  }, 60_000);
  afterAll(async () => {
    await db?.stop();
  });

  const cases: { name: string; setup: string[]; act: (c: Connection) => void; expected: object; error: string }[] = [
    {
      name: 'wait_timeout',
      setup: ['SET SESSION wait_timeout = 1'],
      act: () => {},
      expected: { reason: 'closed', status: 'reset', unreadBytes: 0, pendingError: true },
      error: 'ECONNRESET',
    },
    {
      name: 'idle_transaction_timeout, in a transaction',
      setup: ['SET SESSION idle_transaction_timeout = 1', 'BEGIN'],
      act: () => {},
      expected: { reason: 'closed', status: 'reset', unreadBytes: 0, pendingError: true },
      error: 'ECONNRESET',
    },
    {
      name: 'KILL CONNECTION',
      setup: [],
      act: (c) => db.adminSync(`KILL CONNECTION ${c.threadId}`),
      expected: { reason: 'closed', status: 'peerClosed', unreadBytes: 0, pendingError: false },
      error: 'PROTOCOL_CONNECTION_LOST',
    },
    {
      name: 'KILL SOFT',
      setup: [],
      act: (c) => db.adminSync(`KILL SOFT ${c.threadId}`),
      expected: { reason: 'closed', status: 'peerClosed', unreadBytes: 0, pendingError: false },
      error: 'PROTOCOL_CONNECTION_LOST',
    },
  ];

  for (const c of cases) {
    it(`${c.name}: no packet, only ${c.error === 'ECONNRESET' ? 'a reset' : 'a FIN'}`, async () => {
      const { conn, received, errors } = await open(db, c.setup);
      c.act(conn);
      // The loop stays blocked until the server has acted: nothing is read meanwhile.
      expect(goneSync(conn.stream, 10_000)).toEqual(c.expected);
      await closed(conn.stream);
      expect({ received: Buffer.concat(received).length, errors }).toEqual({ received: 0, errors: [c.error] });
    });
  }

  it('KILL QUERY on an idle connection: nothing at all, the connection stays reusable', async () => {
    const { conn, received } = await open(db);
    db.adminSync(`KILL QUERY ${conn.threadId}`);
    busyWait(200);
    expect(checkReusable(conn.stream)).toMatchObject({ reusable: true, reason: 'idle', state: { unreadBytes: 0 } });
    await new Promise<void>((resolve, reject) => conn.query('SELECT 2', (err) => (err ? reject(err) : resolve())));
    expect(received.length).toBeGreaterThan(0);
    conn.destroy();
  });

  it('a server shutdown: no packet, only a FIN', async () => {
    const own = await startMariaDB();
    const { conn, received, errors } = await open(own);
    const stopped = own.stop();
    try {
      expect(goneSync(conn.stream, 20_000)).toEqual({ reason: 'closed', status: 'peerClosed', unreadBytes: 0, pendingError: false });
    } finally {
      await stopped;
    }
    await closed(conn.stream);
    expect({ received: Buffer.concat(received).length, errors }).toEqual({ received: 0, errors: ['PROTOCOL_CONNECTION_LOST'] });
  }, 60_000);
});

/**
 * The goodbye MySQL 8.0.24+ sends before it closes a connection idle past
 * wait_timeout: an error packet, ER_CLIENT_INTERACTION_TIMEOUT (4031).
 */
function interactionTimeoutPacket(): Buffer {
  const message = 'The client was disconnected by the server because of inactivity.';
  const payload = Buffer.concat([Buffer.from([0xff, 4031 & 0xff, 4031 >> 8]), Buffer.from(`#HY000${message}`)]);
  const header = Buffer.from([payload.length & 0xff, (payload.length >> 8) & 0xff, payload.length >> 16, 0]);
  return Buffer.concat([header, payload]);
}

describe.runIf(run)('sockstate/mysql2 keeps unread bytes a goodbye', () => {
  let db: MariaDB;
  let relay: net.Server;
  let relayPort: number;
  // The relay's side of each client connection, newest last.
  const clientSides: net.Socket[] = [];
  beforeAll(async () => {
    db = await startMariaDB();
    // A loopback relay in front of MariaDB, so a goodbye packet can be put
    // in front of a connection that MariaDB itself would close without one.
    relay = net.createServer((side) => {
      clientSides.push(side);
      const upstream = net.connect(db.port, db.host);
      side.pipe(upstream).pipe(side);
      side.on('error', () => upstream.destroy());
      upstream.on('error', () => side.destroy());
    });
    relayPort = await listen(relay);
  }, 60_000);
  afterAll(async () => {
    for (const s of clientSides) s.destroy();
    relay?.close();
    await db?.stop();
  });

  it('a goodbye packet waiting unread (as MySQL 8 sends on wait_timeout) fails the stock pool\'s next query; the guarded pool replaces the connection', async () => {
    const results: Record<string, unknown> = {};
    for (const guarded of [false, true]) {
      const pool = mysql.createPool({ host: '127.0.0.1', port: relayPort, user: db.user, connectionLimit: 1 });
      if (guarded) guardPool(pool);
      try {
        const query = () => new Promise<string | null>((resolve) => pool.query('SELECT 1 AS one', (err) => resolve(err ? String((err as { code?: string }).code) : null)));
        expect(await query()).toBeNull();
        const free = (pool as unknown as { _freeConnections: { get(i: number): { stream: net.Socket } } })._freeConnections.get(0)!;
        await sleep(10);
        // Written into the kernel at once; mysql2 has not read it when the query goes out.
        clientSides[clientSides.length - 1]!.write(interactionTimeoutPacket());
        const deadline = Date.now() + 5000;
        while (checkReusable(free.stream).state.unreadBytes === 0) {
          if (Date.now() > deadline) throw new Error('the packet did not arrive');
        }
        results[guarded ? 'guarded' : 'stock'] = { code: await query(), ...(guarded ? { stats: guardStats(pool) } : {}) };
      } finally {
        await new Promise((resolve) => pool.end(resolve));
      }
    }
    expect(results).toEqual({
      // mysql2 reads the stale packet as its query's reply.
      stock: { code: 'ER_CLIENT_INTERACTION_TIMEOUT' },
      guarded: {
        code: null,
        stats: { checked: 1, rejected: 1, rejectedByReason: { closed: 0, dataPending: 1, stalled: 0, silent: 0 }, unchecked: 0, lastProbeError: null },
      },
    });
  });
});
