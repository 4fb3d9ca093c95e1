import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { findProgram, serverAvailable } from './programs';

const BIN = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin', '/usr/lib/postgresql/14/bin'];

/** The `postgres` server binary, or null when PostgreSQL is not installed. */
export const postgresBin = findProgram(BIN.map((dir) => path.join(dir, 'postgres')));
const initdbBin = postgresBin === null ? null : findProgram([path.join(path.dirname(postgresBin), 'initdb')]);
const isReadyBin = postgresBin === null ? null : findProgram([path.join(path.dirname(postgresBin), 'pg_isready')]);
const psqlBin = postgresBin === null ? null : findProgram([path.join(path.dirname(postgresBin), 'psql')]);

/** Whether the PostgreSQL suites can run (skips outside CI, fails in CI, when missing). */
export function postgresAvailable(): boolean {
  return serverAvailable('PostgreSQL', postgresBin !== null && initdbBin !== null && isReadyBin !== null && psqlBin !== null ? postgresBin : null, 'apt-get install postgresql');
}

/** A PostgreSQL server this process started in a temporary directory. */
export interface Postgres {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Superuser without a password (trust authentication on loopback). */
  readonly user: 'postgres';
  readonly database: 'postgres';
  /** Its temporary directory (data, socket, log, certificate). */
  readonly dir: string;
  /** The self-signed certificate (PEM) when started with `ssl: true`. */
  readonly cert: Buffer | null;
  /** Connection settings for `pg` (host, port, user, database). */
  readonly config: { host: string; port: number; user: string; database: string };
  /** SQL in `psql`, a separate process, synchronously: this event loop stays blocked meanwhile. */
  adminSync(sql: string): string;
  /**
   * Blocks (the event loop too) until the server has no session left with
   * one of these `application_name`s: each has then sent its goodbye and
   * closed. Throws after `timeoutMs`.
   */
  sessionsGoneSync(applicationNames: readonly string[], timeoutMs?: number): void;
  /** Stops the server (fast shutdown) and removes its directory. */
  stop(): Promise<void>;
}

/** Options for {@link startPostgres}. */
export interface PostgresOptions {
  /** The server's `idle_session_timeout` in ms: it ends a session idle that long (FATAL 57P05, then FIN). */
  idleSessionTimeoutMs?: number;
  /** Serve TLS too (`ssl=on`), with a self-signed certificate made here with openssl. */
  ssl?: boolean;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** uid and gid of the `postgres` user: the server refuses to run as root. */
function postgresIds(): { uid: number; gid: number } | null {
  if (!isRoot) return null;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** True once the server accepts connections (`pg_isready`: not while it is still starting up). */
async function ready(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(isReadyBin!, ['-q', '-h', '127.0.0.1', '-p', String(port)], (err) => resolve(err === null));
  });
}

/**
 * Starts PostgreSQL: `initdb` into a fresh temporary directory, then
 * `postgres` on a free loopback port (TCP on 127.0.0.1 only, its socket in
 * that directory), as the `postgres` user when this process is root, and
 * waits until it answers. Call `stop()` when done.
 */
export async function startPostgres(options: PostgresOptions = {}): Promise<Postgres> {
  if (postgresBin === null || initdbBin === null) throw new Error('PostgreSQL is not installed (apt-get install postgresql)');
  const ids = postgresIds();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-pg-'));
  fs.chmodSync(dir, 0o700);
  const data = path.join(dir, 'data');
  const owned = { ...(ids ?? {}) };
  if (ids !== null) fs.chownSync(dir, ids.uid, ids.gid);
  execFileSync(initdbBin, ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], {
    stdio: 'ignore',
    ...owned,
  });
  let cert: Buffer | null = null;
  const args = [
    '-D', data,
    '-c', 'listen_addresses=127.0.0.1',
    '-c', `unix_socket_directories=${dir}`,
    '-c', 'fsync=off',
    '-c', 'max_connections=60',
    '-c', 'log_min_messages=fatal',
  ];
  if (options.idleSessionTimeoutMs !== undefined) args.push('-c', `idle_session_timeout=${options.idleSessionTimeoutMs}`);
  if (options.ssl === true) {
    const key = path.join(dir, 'server.key');
    const crt = path.join(dir, 'server.crt');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', '/CN=localhost', '-keyout', key, '-out', crt],
      { stdio: 'ignore' },
    );
    fs.chmodSync(key, 0o600);
    if (ids !== null) {
      fs.chownSync(key, ids.uid, ids.gid);
      fs.chownSync(crt, ids.uid, ids.gid);
    }
    cert = fs.readFileSync(crt);
    args.push('-c', 'ssl=on', '-c', `ssl_cert_file=${crt}`, '-c', `ssl_key_file=${key}`);
  }
  const port = await freePort();
  args.push('-p', String(port));
  const log = fs.openSync(path.join(dir, 'log'), 'w');
  const child = spawn(postgresBin, args, { stdio: ['ignore', log, log], ...owned });
  fs.closeSync(log);
  running.add(child);
  let exited = false;
  child.once('exit', () => {
    exited = true;
    running.delete(child);
  });
  const deadline = Date.now() + 20_000;
  while (!(await ready(port))) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL');
      const text = fs.readFileSync(path.join(dir, 'log'), 'utf8');
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`PostgreSQL did not start: ${text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const config = { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' };
  const adminSync = (sql: string): string =>
    execFileSync(psqlBin!, ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-XAtqc', sql], { encoding: 'utf8' });
  return {
    adminSync,
    sessionsGoneSync(applicationNames, timeoutMs = 15_000) {
      const list = applicationNames.map((n) => `'${n.replace(/'/g, "''")}'`).join(', ');
      const deadline = Date.now() + timeoutMs;
      while (adminSync(`SELECT count(*) FROM pg_stat_activity WHERE application_name IN (${list})`).trim() !== '0') {
        if (Date.now() > deadline) throw new Error(`sessions ${list} still open after ${timeoutMs} ms`);
      }
    },
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'postgres',
    dir,
    cert,
    config,
    async stop() {
      if (!exited) {
        const gone = once(child, 'exit');
        // SIGINT: fast shutdown, ends every session.
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await gone;
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
