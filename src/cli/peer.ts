/**
 * The remote side for `sockstate demo`, run as a child process so that its
 * socket lives in another process (and, for the vanishing peer, another
 * network namespace).
 *
 * Usage: `node peer.js [--host <address>]`. Listens on port 0 and speaks a
 * line protocol. Writes `ready <port>`, `accepted`, `armed`,
 * `acted <what> <epoch ms>` to stdout; reads commands from stdin:
 * - `close <ms>`: close the last accepted connection after `ms` (a FIN);
 * - `reset <ms>`: reset it after `ms` (SO_LINGER 0, an RST);
 * - `http <ms>`: from now on, answer each HTTP request with a keep-alive
 *   response and close the connection once it has been idle `ms`;
 * - `linkdown <interface>`: take that interface of our network namespace
 *   down (`ip link set … down`), then say `acted linkdown <epoch ms>`;
 * - `exit`: exit.
 * Connections allow half-open: when the other side half-closes, the peer
 * answers `bye\n` and keeps its side open.
 *
 * @packageDocumentation
 */
import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import * as readline from 'node:readline';

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function hostArg(argv: readonly string[]): string {
  const i = argv.indexOf('--host');
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : '127.0.0.1';
}

let current: net.Socket | null = null;
let httpIdleMs: number | null = null;

const connections = new Set<net.Socket>();

// Exits after resetting every connection (SO_LINGER 0): a plain close would
// leave an orphaned socket retransmitting its FIN over a cut link for
// minutes, and holding the network namespace (and the veth pair) alive
// that long after we are gone.
function quit(): never {
  for (const socket of connections) socket.resetAndDestroy();
  process.exit(0);
}

const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  current = socket;
  connections.add(socket);
  socket.on('close', () => connections.delete(socket));
  socket.on('error', (err) => say(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
  socket.on('end', () => {
    socket.write('bye\n');
  });
  let pending = '';
  let idle: NodeJS.Timeout | null = null;
  socket.on('data', (chunk: Buffer) => {
    if (httpIdleMs === null) return;
    pending += chunk.toString('latin1');
    let end = pending.indexOf('\r\n\r\n');
    while (end >= 0) {
      pending = pending.slice(end + 4);
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
      if (idle !== null) clearTimeout(idle);
      const ms = httpIdleMs;
      idle = setTimeout(() => {
        const t = now();
        socket.destroy();
        say(`acted close ${t}`);
      }, ms);
      end = pending.indexOf('\r\n\r\n');
    }
  });
  say('accepted');
});

server.on('error', (err) => {
  say(`error ${err.message}`);
  process.exit(1);
});

server.listen(0, hostArg(process.argv.slice(2)), () => {
  say(`ready ${(server.address() as net.AddressInfo).port}`);
});

function act(what: 'close' | 'reset', ms: number): void {
  const socket = current;
  if (socket === null) {
    say('error no connection');
    return;
  }
  say('armed');
  setTimeout(() => {
    const t = now();
    if (what === 'reset') socket.resetAndDestroy();
    else socket.destroy();
    say(`acted ${what} ${t}`);
  }, ms);
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, arg] = line.trim().split(/\s+/);
  const ms = Number(arg ?? 0);
  switch (command) {
    case 'close':
    case 'reset':
      act(command, ms);
      break;
    case 'linkdown': {
      const r = spawnSync('ip', ['link', 'set', arg ?? '', 'down'], { encoding: 'utf8', timeout: 10_000 });
      if (r.status === 0) say(`acted linkdown ${now()}`);
      else say(`error linkdown ${(r.error?.message ?? r.stderr.trim()) || `exit ${r.status}`}`);
      break;
    }
    case 'http':
      httpIdleMs = ms;
      say('armed');
      break;
    case 'exit':
      quit();
      break;
    default:
      say(`error unknown command ${line}`);
  }
});

// The demo's end (or its death) closes our stdin: nothing left to do. Once
// it is gone, writing to it fails (EPIPE): exit quietly then too, rather
// than print a trace on a terminal that has moved on.
process.stdin.on('end', quit);
process.stdout.on('error', quit);
for (const signal of ['SIGHUP', 'SIGINT', 'SIGTERM'] as const) process.on(signal, quit);
