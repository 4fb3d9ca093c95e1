/**
 * A throwaway network namespace joined to this one by a veth pair, for the
 * demo's vanishing peer (and the tests' dead peers). Root only. Its addresses exist only on the pair it
 * creates (a /30 in 198.18.0.0/15, the range RFC 2544 sets aside for
 * testing), and everything is removed again: by {@link Namespace.destroy},
 * and on process exit as a last resort.
 *
 * @packageDocumentation
 */
import { spawnSync } from 'node:child_process';

/** A namespace with a veth pair; see {@link createNamespace}. */
export interface Namespace {
  /** Namespace name (`ip netns exec <name> …`). */
  readonly name: string;
  /** Our end of the pair, and its address. */
  readonly hostInterface: string;
  readonly hostAddress: string;
  /** Address inside the namespace, where the peer listens. */
  readonly peerAddress: string;
  /** The namespace's end of the pair (for a process inside to take down). */
  readonly peerInterface: string;
  /** Argument vector prefix that runs a command inside the namespace. */
  readonly exec: readonly string[];
  /**
   * Takes the namespace's end of the link down: our packets to the peer
   * are then dropped without a word (no RST, no ICMP). Our neighbour entry
   * for the peer is permanent, so no failed ARP turns the silence into an
   * EHOSTUNREACH.
   */
  cutLink(): void;
  /**
   * Deletes the namespace's name once a process runs inside it: from then
   * on the namespace lives only as long as the processes in it, and the
   * kernel removes it, and the veth pair with it, when the last one exits,
   * however this process dies. {@link Namespace.exec} and
   * {@link Namespace.cutLink} no longer work afterwards.
   *
   * @throws Error when `ip netns del` fails.
   */
  release(): void;
  /** Deletes the namespace and the pair; safe to call twice. */
  destroy(): void;
}

/** The result of running `ip`. */
interface IpResult {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

// Every `ip` runs in a session of its own (detached): a Ctrl-C or a hang-up
// aimed at the terminal's process group must not kill a half-done set-up
// or clean-up; our own signal handlers decide what happens. spawnSync
// honours `detached` as spawn does (Node 20-26), though @types/node omits it.
const IP_OPTIONS = { encoding: 'utf8', timeout: 10_000, detached: true } as const;

function ip(args: readonly string[]): IpResult {
  const r = spawnSync('ip', args, IP_OPTIONS);
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/**
 * An `ip` command was killed by SIGHUP, SIGINT or SIGTERM: a signal aimed
 * at the terminal's process group that reached it before it could leave
 * the group (between fork and setsid). The caller's own handler for that
 * signal is about to run; this is an interruption, not a failure.
 */
export class InterruptedError extends Error {
  /** The signal that killed the command. */
  readonly signal: NodeJS.Signals;

  /**
   * @param message - What was interrupted.
   * @param signal - The signal.
   */
  constructor(message: string, signal: NodeJS.Signals) {
    super(message);
    this.name = 'InterruptedError';
    this.signal = signal;
  }
}

const INTERRUPTS: readonly string[] = ['SIGHUP', 'SIGINT', 'SIGTERM'];

// A clean-up command killed by a signal aimed at the group (a second
// Ctrl-C between fork and setsid) is run again: the clean-up must finish
// whatever arrives while it runs.
function ipAgain(args: readonly string[]): IpResult {
  let r = ip(args);
  for (let tries = 1; tries < 4 && r.signal !== null && INTERRUPTS.includes(r.signal); tries++) r = ip(args);
  return r;
}

function ipOrThrow(args: readonly string[]): string {
  const r = ip(args);
  if (r.signal !== null && INTERRUPTS.includes(r.signal)) {
    throw new InterruptedError(`ip ${args.join(' ')} was interrupted (${r.signal})`, r.signal);
  }
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim() || (r.signal === null ? `exit ${r.status}` : `killed by ${r.signal}`)}`);
  return r.stdout;
}

/**
 * True when the `ip` command (iproute2) can be run.
 *
 * @throws InterruptedError when a signal killed it.
 */
export function ipAvailable(): boolean {
  const r = spawnSync('ip', ['-V'], IP_OPTIONS);
  if (r.signal !== null && INTERRUPTS.includes(r.signal)) {
    throw new InterruptedError(`ip -V was interrupted (${r.signal})`, r.signal);
  }
  return r.error === undefined && r.status === 0;
}

function dotted(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

// 198.18.0.0/15 holds 32768 /30 blocks; start from one picked by pid and
// skip any block already present on this machine.
function pickSubnet(): { host: string; peer: string } {
  const base = 198 * 2 ** 24 + 18 * 2 ** 16;
  const inUse = ipOrThrow(['-4', '-o', 'addr', 'show']) + ipOrThrow(['-4', 'route', 'show', 'table', 'all']);
  for (let i = 0; i < 64; i++) {
    const block = (process.pid + i * 7919) % 32768;
    const net = base + block * 4;
    const host = dotted(net + 1);
    const peer = dotted(net + 2);
    const prefix = dotted(net);
    if (!inUse.includes(`${host}/`) && !inUse.includes(`${peer}/`) && !inUse.includes(`${prefix}/30`)) {
      return { host, peer };
    }
  }
  throw new Error('no free /30 in 198.18.0.0/15 for the namespace');
}

let created = 0;

/**
 * Creates the namespace and the pair, addresses on both ends, links up.
 * On failure, removes whatever part was made before rethrowing.
 *
 * @param purpose - A word for the namespace's name (`sockstate-<purpose>-…`).
 * @throws Error when an `ip` command fails (not root, no netns support).
 */
export function createNamespace(purpose = 'demo'): Namespace {
  const id = `${process.pid}${(created++).toString(36)}`;
  const name = `sockstate-${purpose}-${id}`;
  // Interface names stay within the kernel's 15 characters.
  const hostIf = `ss${id}h`;
  const peerIf = `ss${id}n`;
  let destroyed = false;
  const destroy = (): void => {
    if (destroyed) return;
    destroyed = true;
    process.removeListener('exit', destroy);
    // Deleting the namespace deletes its end of the pair, and with it ours;
    // the explicit link delete covers a namespace that was never made.
    const ns = ipAgain(['netns', 'del', name]);
    const link = ipAgain(['link', 'del', hostIf]);
    const gone = (r: IpResult) => r.status === 0 || /No such|Cannot find|does not exist/i.test(r.stderr);
    if (!gone(ns) || !gone(link)) {
      const why = (r: IpResult): string => r.stderr.trim() || (r.signal === null ? `exit ${r.status}` : `killed by ${r.signal}`);
      process.stderr.write(`sockstate: could not remove namespace ${name} / link ${hostIf}: ${why(ns)} ${why(link)}\n`);
    }
  };
  process.on('exit', destroy);
  try {
    const { host, peer } = pickSubnet();
    const inNs = ['netns', 'exec', name, 'ip'];
    ipOrThrow(['netns', 'add', name]);
    ipOrThrow(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf]);
    ipOrThrow(['link', 'set', peerIf, 'netns', name]);
    ipOrThrow(['addr', 'add', `${host}/30`, 'dev', hostIf]);
    ipOrThrow(['link', 'set', hostIf, 'up']);
    ipOrThrow([...inNs, 'addr', 'add', `${peer}/30`, 'dev', peerIf]);
    ipOrThrow([...inNs, 'link', 'set', peerIf, 'up']);
    ipOrThrow([...inNs, 'link', 'set', 'lo', 'up']);
    const mac = ipOrThrow([...inNs, '-o', 'link', 'show', peerIf]).match(/link\/ether ([0-9a-f:]{17})/)?.[1];
    if (mac === undefined) throw new Error(`no MAC address found for ${peerIf}`);
    ipOrThrow(['neigh', 'replace', peer, 'lladdr', mac, 'dev', hostIf, 'nud', 'permanent']);
    return {
      name,
      hostInterface: hostIf,
      hostAddress: host,
      peerAddress: peer,
      peerInterface: peerIf,
      exec: ['ip', 'netns', 'exec', name],
      cutLink: () => {
        ipOrThrow([...inNs, 'link', 'set', peerIf, 'down']);
      },
      release: () => {
        ipOrThrow(['netns', 'del', name]);
      },
      destroy,
    };
  } catch (err) {
    destroy();
    throw err;
  }
}
