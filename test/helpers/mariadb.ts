import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { findProgram, serverAvailable } from './programs';

/** The MariaDB server binary, or null when mariadb-server is not installed. */
export const mariadbd = findProgram(['/usr/sbin/mariadbd', '/usr/sbin/mysqld', '/usr/bin/mariadbd']);
const installDb = findProgram(['/usr/bin/mariadb-install-db', '/usr/bin/mysql_install_db']);
const client = findProgram(['/usr/bin/mariadb', '/usr/bin/mysql']);

/** Whether the MariaDB suites can run (skips outside CI, fails in CI, when missing). */
export function mariadbAvailable(): boolean {
  const all = mariadbd !== null && installDb !== null && client !== null;
  return serverAvailable('MariaDB', all ? mariadbd : null, 'apt-get install mariadb-server');
}

/** A MariaDB server this process started in a temporary directory. */
export interface MariaDB {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly user: 'root';
  /** Its temporary directory (data, socket, log). */
  readonly dir: string;
  /** Its Unix socket. */
  readonly socketPath: string;
  /**
   * Runs SQL in the `mariadb` client, a separate process with its own
   * session, and resolves with its tab-separated output rows.
   */
  admin(sql: string): Promise<string[]>;
  /**
   * The same, synchronously: the event loop stays blocked while the server
   * acts, as a busy process's would.
   */
  adminSync(sql: string): string[];
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

/** Options for {@link startMariaDB}. */
export interface MariaDBOptions {
  /** The server's `wait_timeout` in seconds: it closes a connection idle that long. */
  waitTimeout?: number;
  /** A key and certificate (PEM) for the server to offer TLS with. */
  tls?: { key: Buffer; cert: Buffer };
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once a TCP client on `port` receives the server's greeting. */
async function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('data', () => done(true));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

/**
 * Starts MariaDB: `mariadb-install-db` into a fresh temporary directory,
 * then `mariadbd` on a free loopback port (TCP on 127.0.0.1 only, its
 * socket file in that directory), and waits until it greets a client.
 * User `root` without a password. Call `stop()` when done.
 */
export async function startMariaDB(options: MariaDBOptions = {}): Promise<MariaDB> {
  if (mariadbd === null || installDb === null) throw new Error('MariaDB is not installed (apt-get install mariadb-server)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-mariadb-'));
  const data = path.join(dir, 'data');
  const asUser = isRoot ? ['--user=root'] : [];
  const install = spawnSync(
    installDb,
    ['--no-defaults', `--datadir=${data}`, ...asUser, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  if (install.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`mariadb-install-db failed (${install.status ?? install.signal}): ${install.stderr}${install.stdout}`);
  }
  const log = path.join(dir, 'error.log');
  const tlsArgs: string[] = [];
  if (options.tls !== undefined) {
    fs.writeFileSync(path.join(dir, 'key.pem'), options.tls.key, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'cert.pem'), options.tls.cert);
    tlsArgs.push(`--ssl-key=${path.join(dir, 'key.pem')}`, `--ssl-cert=${path.join(dir, 'cert.pem')}`);
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const args = [
      '--no-defaults',
      `--datadir=${data}`,
      ...asUser,
      '--skip-networking=0',
      '--bind-address=127.0.0.1',
      `--port=${port}`,
      `--socket=${path.join(dir, 'mysqld.sock')}`,
      `--pid-file=${path.join(dir, 'mysqld.pid')}`,
      `--log-error=${log}`,
      '--skip-name-resolve',
      '--skip-log-bin',
      '--innodb-buffer-pool-size=16M',
      '--max-connections=200',
      ...(options.waitTimeout === undefined ? [] : [`--wait-timeout=${options.waitTimeout}`]),
      ...tlsArgs,
    ];
    const child = spawn(mariadbd, args, { stdio: 'ignore' });
    running.add(child);
    let exited = false;
    child.once('exit', () => {
      exited = true;
      running.delete(child);
    });
    const deadline = Date.now() + 30_000;
    while (!exited && Date.now() < deadline && !(await greets(port))) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (!exited && Date.now() < deadline) {
      const clientArgs = (sql: string) => ['--no-defaults', '-h127.0.0.1', `-P${port}`, '-uroot', '--batch', '--skip-column-names', '-e', sql];
      const rows = (out: string) => out.split('\n').filter((line) => line !== '');
      return {
        host: '127.0.0.1',
        port,
        user: 'root',
        dir,
        socketPath: path.join(dir, 'mysqld.sock'),
        admin(sql) {
          return new Promise((resolve, reject) => {
            execFile(client!, clientArgs(sql), { timeout: 10_000 }, (err, stdout, stderr) => {
              if (err) reject(new Error(`mariadb -e ${JSON.stringify(sql)}: ${stderr || err.message}`));
              else resolve(rows(stdout));
            });
          });
        },
        adminSync(sql) {
          const result = spawnSync(client!, clientArgs(sql), { encoding: 'utf8', timeout: 10_000 });
          if (result.status !== 0) throw new Error(`mariadb -e ${JSON.stringify(sql)}: ${result.stderr || result.error?.message}`);
          return rows(result.stdout);
        },
        async stop() {
          if (!exited) {
            const gone = once(child, 'exit');
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
            await gone;
            clearTimeout(timer);
          }
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    if (!exited) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    // Another process may take the free port between our probe and the bind.
    if (attempt < 2 && /Address already in use|Do you already have another/.test(text)) continue;
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`mariadbd did not start:\n${text.slice(-2000)}`);
  }
}
