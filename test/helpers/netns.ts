import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as readline from 'node:readline';

/** `ip netns` needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN). */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A TCP server running inside the namespace, in its own node process. */
export interface NetnsServer {
  readonly child: ChildProcess;
  /** Its address (the namespace's end of the veth pair). */
  readonly host: string;
  readonly port: number;
}

/**
 * A network namespace joined to ours by one veth pair, with a /30 on it:
 * traffic to {@link Netns.nsAddr} leaves through that pair only.
 */
export interface Netns {
  readonly name: string;
  /** Our end of the veth pair, and its address. */
  readonly hostIf: string;
  readonly hostAddr: string;
  /** The namespace's end, and its address. */
  readonly nsIf: string;
  readonly nsAddr: string;
  /** Runs a command inside the namespace; returns its stdout. */
  exec(args: string[]): string;
  /** Starts a server inside the namespace that accepts and holds connections, reading nothing. */
  startServer(): Promise<NetnsServer>;
  /**
   * Cuts the link: the namespace silently drops everything it would send
   * to us (a blackhole route). Our segments still arrive and are never
   * acknowledged, so our kernel retransmits (or probes) cleanly, with no
   * local error and no ICMP, until it times out with ETIMEDOUT.
   */
  cut(): void;
  /** Stops the servers and deletes the namespace and the veth pair. Idempotent. */
  destroy(): void;
}

let counter = 0;

function run(args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A /30 in 10.200.0.0/13 that no address or route of ours uses yet. */
function freeSubnet(): [host: string, ns: string] {
  const inUse = run(['ip', '-4', 'route', 'show', 'table', 'all']) + run(['ip', '-4', 'addr', 'show']);
  for (let attempt = 0; attempt < 50; attempt++) {
    const b = 200 + Math.floor(Math.random() * 8);
    const c = Math.floor(Math.random() * 256);
    const d = Math.floor(Math.random() * 64) * 4;
    const prefix = `10.${b}.${c}.`;
    if (!inUse.includes(`${prefix}${d}/30`) && !inUse.includes(`${prefix}${d + 1}`) && !inUse.includes(`${prefix}${d + 2}`)) {
      return [`${prefix}${d + 1}`, `${prefix}${d + 2}`];
    }
  }
  throw new Error('no free 10.200.0.0/13 subnet for the test namespace');
}

// The server in the namespace: prints its port, holds every connection
// paused, ends them all (a FIN each) on the stdin line "end", and exits
// when its stdin closes (so it never outlives the test).
const SERVER = `
const net = require('node:net');
const held = [];
const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => { s.on('error', () => {}); held.push(s); });
server.listen(0, process.argv[1], () => console.log(server.address().port));
process.stdin.on('data', (d) => { if (String(d).includes('end')) for (const s of held.splice(0)) s.end(); });
process.stdin.on('end', () => process.exit(0));
`;

const live = new Set<Netns>();
process.once('exit', () => {
  for (const ns of live) ns.destroy();
});

/**
 * Creates a namespace with a unique name, a veth pair between it and the
 * test's namespace, and addresses on that pair only. Call `destroy()` in
 * afterAll; it also runs at process exit if a test crashed first.
 */
export function createNetns(): Netns {
  const id = `${process.pid % 100000}${(counter++).toString(36)}`;
  const name = `sockstate-${process.pid}-${counter}`;
  const hostIf = `ssh${id}`;
  const nsIf = `ssn${id}`;
  const [hostAddr, nsAddr] = freeSubnet();
  const servers: ChildProcess[] = [];
  let destroyed = false;
  const inNs = (args: string[]) => ['ip', 'netns', 'exec', name, ...args];

  const ns: Netns = {
    name,
    hostIf,
    hostAddr,
    nsIf,
    nsAddr,
    exec: (args) => run(inNs(args)),
    async startServer() {
      const [cmd, ...args] = inNs([process.execPath, '-e', SERVER, nsAddr]);
      const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'inherit'] });
      servers.push(child);
      const exited = once(child, 'exit').then(([code]) => {
        throw new Error(`the namespace server exited (${String(code)}) before listening`);
      });
      const line = once(readline.createInterface({ input: child.stdout! }), 'line') as Promise<[string]>;
      const [port] = await Promise.race([line, exited]);
      return { child, host: nsAddr, port: Number(port) };
    },
    cut() {
      run(inNs(['ip', 'route', 'add', 'blackhole', `${hostAddr}/32`]));
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(ns);
      for (const child of servers) child.kill('SIGKILL');
      // Deleting our end deletes the pair; the namespace goes next. Both
      // are attempted even if one is already gone.
      const errors: string[] = [];
      for (const args of [
        ['ip', 'link', 'del', hostIf],
        ['ip', 'netns', 'del', name],
      ]) {
        try {
          run(args);
        } catch (err) {
          const stderr = String((err as { stderr?: unknown }).stderr ?? err);
          if (!/Cannot find device|No such file|does not exist/.test(stderr)) errors.push(`${args.join(' ')}: ${stderr}`);
        }
      }
      if (errors.length > 0) throw new Error(`netns teardown failed:\n${errors.join('\n')}`);
    },
  };

  live.add(ns);
  try {
    run(['ip', 'netns', 'add', name]);
    run(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', name]);
    run(['ip', 'addr', 'add', `${hostAddr}/30`, 'dev', hostIf]);
    run(['ip', 'link', 'set', hostIf, 'up']);
    run(inNs(['ip', 'addr', 'add', `${nsAddr}/30`, 'dev', nsIf]));
    run(inNs(['ip', 'link', 'set', nsIf, 'up']));
  } catch (err) {
    ns.destroy();
    throw err;
  }
  return ns;
}
