import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as readline from 'node:readline';
import { createNamespace } from '../../src/cli/netns';

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
 * The demo's namespace (src/cli/netns.ts: a veth pair, a /30 in
 * 198.18.0.0/15 on it and nowhere else) with what the tests add: a server
 * inside, and a cut that keeps both links up.
 */
export interface Netns {
  /** Starts a server inside the namespace that accepts and holds connections, reading nothing. */
  startServer(): Promise<NetnsServer>;
  /**
   * Cuts the link: the namespace silently drops everything it would send
   * to us (a blackhole route). Our segments still arrive and are never
   * acknowledged, so our kernel retransmits (or probes) cleanly, with no
   * local error and no ICMP, until it times out with ETIMEDOUT.
   */
  cut(): void;
  /** Undoes {@link Netns.cut}. */
  restore(): void;
  /** Stops the servers and deletes the namespace and the veth pair. Idempotent. */
  destroy(): void;
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

/**
 * Creates a namespace with a unique name, a veth pair between it and the
 * test's namespace, and addresses on that pair only. Call `destroy()` in
 * afterAll; it also runs at process exit if a test crashed first.
 */
export function createNetns(): Netns {
  const ns = createNamespace('test');
  const servers: ChildProcess[] = [];
  const blackhole = (verb: 'add' | 'del') =>
    execFileSync(ns.exec[0]!, [...ns.exec.slice(1), 'ip', 'route', verb, 'blackhole', `${ns.hostAddress}/32`], {
      stdio: 'ignore',
    });
  return {
    async startServer() {
      const [cmd, ...args] = [...ns.exec, process.execPath, '-e', SERVER, ns.peerAddress];
      const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'inherit'] });
      servers.push(child);
      const exited = once(child, 'exit').then(([code]) => {
        throw new Error(`the namespace server exited (${String(code)}) before listening`);
      });
      const line = once(readline.createInterface({ input: child.stdout! }), 'line') as Promise<[string]>;
      const [port] = await Promise.race([line, exited]);
      return { child, host: ns.peerAddress, port: Number(port) };
    },
    cut: () => blackhole('add'),
    restore: () => blackhole('del'),
    destroy() {
      for (const child of servers.splice(0)) child.kill('SIGKILL');
      ns.destroy();
    },
  };
}
