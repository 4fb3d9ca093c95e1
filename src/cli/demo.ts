/**
 * `sockstate demo`: what Node's socket flags say next to what the kernel
 * says, at the same instant, in the situations where they differ. The
 * remote side is a child process (src/cli/peer.ts) on loopback, or inside a
 * network namespace for the vanishing peer.
 *
 * @packageDocumentation
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { type ConnectionState, connectionState, supported, unsupportedReason } from '..';
import { setUserTimeout } from '../probe/sockopt';
import { alignColumns, createPaint, formatMs, type Paint, paintStatus } from './format';
import { createNamespace, InterruptedError, ipAvailable, type Namespace } from './netns';
import { packageVersion } from './usage';

/** Wall-clock ms with sub-ms precision; the peer uses the same clock, so times compare across processes. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** How long the peer waits after being armed before it acts. */
const PEER_DELAY_MS = 50;
/** How long the client stays busy after sockstate has noticed. */
const BUSY_AFTER_MS = 200;
/** Upper bound on any wait in a scenario. */
const WAIT_LIMIT_MS = 5000;
/** The keep-alive server's idle timeout. */
const KEEPALIVE_IDLE_MS = 100;
/** TCP_USER_TIMEOUT for the vanishing peer. */
const USER_TIMEOUT_MS = 1500;
/** Signals that end the demo after cleaning up, with exit code 128 + the signal's number. */
const HANDLED_SIGNALS = ['SIGHUP', 'SIGINT', 'SIGTERM'] as const;

/** What pure JavaScript can read off a socket. */
interface Flags {
  readonly destroyed: boolean;
  readonly readyState: string;
  readonly readableEnded: boolean;
}

function flagsOf(socket: net.Socket): Flags {
  return { destroyed: socket.destroyed, readyState: socket.readyState, readableEnded: socket.readableEnded };
}

/** Both views of one socket, read in the same synchronous step. */
interface Moment {
  readonly label: string;
  readonly at: number;
  readonly flags: Flags;
  readonly state: ConnectionState;
}

function moment(label: string, socket: net.Socket): Moment {
  const state = connectionState(socket);
  return { label, at: now(), flags: flagsOf(socket), state };
}

/** When a side first noticed, relative to the peer's action. */
interface Notice {
  readonly afterMs: number | null;
  readonly how: string;
}

/** One scenario's outcome, printed as a block. */
interface Result {
  readonly title: string;
  readonly story: readonly string[];
  readonly moments: readonly Moment[];
  readonly sockstate: Notice;
  readonly flags: Notice;
  readonly notes: readonly string[];
  readonly expected: string;
  readonly problems: readonly string[];
  readonly skipped?: string;
}

/** A child process running peer.js, read line by line. */
class Peer {
  readonly child: ChildProcess;
  private listenPort = 0;
  private readonly lines: string[] = [];
  private wake: (() => void) | null = null;
  private exitReason: string | null = null;

  private constructor(argv: readonly string[]) {
    const [cmd, ...args] = argv;
    // In a session of its own (detached), so that a Ctrl-C or hang-up aimed
    // at the terminal reaches only us, and we stop it ourselves. If we die
    // without doing so, its stdin closes and it exits.
    this.child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
    let buffered = '';
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        this.lines.push(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
      }
      this.notify();
    });
    this.child.on('exit', (code, signal) => {
      this.exitReason = `the peer exited (${signal ?? `code ${code}`})`;
      this.notify();
    });
    this.child.on('error', (err) => {
      this.exitReason = `the peer could not start: ${err.message}`;
      this.notify();
    });
    // A broken pipe after the peer exits is reported through exitReason.
    this.child.stdin!.on('error', () => this.notify());
  }

  /**
   * Spawns `argv` (which runs peer.js) and returns at once, so the caller
   * can register it for clean-up before waiting for {@link Peer.ready}.
   */
  static spawn(argv: readonly string[]): Peer {
    return new Peer(argv);
  }

  /** Waits for `ready <port>`; stops the peer if it never comes. */
  async ready(): Promise<void> {
    try {
      const ready = await this.next('ready ');
      this.listenPort = Number(ready.slice('ready '.length));
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  /** The port the peer listens on. */
  get port(): number {
    return this.listenPort;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Takes the first line starting with `prefix`, waiting for it if need be. */
  async next(prefix: string): Promise<string> {
    const deadline = now() + WAIT_LIMIT_MS;
    for (;;) {
      const i = this.lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return this.lines.splice(i, 1)[0]!;
      if (this.exitReason !== null) throw new Error(`${this.exitReason} while we waited for '${prefix.trim()}'`);
      if (now() > deadline) {
        throw new Error(`the peer did not say '${prefix.trim()}' (it said: ${this.lines.join(' | ') || 'nothing'})`);
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  /** The time in an `acted <what> <ms>` line. */
  async acted(what: string): Promise<number> {
    const line = await this.next(`acted ${what} `);
    return Number(line.split(' ')[2]);
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
  }
}

/**
 * Connects a client. With `hold`, the socket stops reading once connected,
 * so whatever arrives stays in the kernel and Node polls nothing on the fd:
 * `pause()` only stops libuv's reads on a socket created with `onread`
 * (a plain one keeps reading into its stream buffer).
 */
function connect(host: string, port: number, { allowHalfOpen = false, hold = false } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = hold
      ? net.connect({ host, port, allowHalfOpen, onread: { buffer: Buffer.alloc(4096), callback: () => true } })
      : net.connect({ host, port, allowHalfOpen });
    if (hold) socket.once('connect', () => socket.pause());
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${host}:${port} timed out`));
    }, WAIT_LIMIT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Records when Node's events first told JS that something happened. */
interface EventLog {
  first: { at: number; how: string } | null;
  errorCode: string | null;
  ended: boolean;
  closed: Promise<void>;
}

function logEvents(socket: net.Socket): EventLog {
  const log: EventLog = { first: null, errorCode: null, ended: false, closed: Promise.resolve() };
  const note = (how: string) => {
    if (log.first === null) log.first = { at: now(), how };
  };
  socket.on('end', () => {
    log.ended = true;
    note("'end' event");
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    log.errorCode = err.code ?? err.message;
    note(`'error' ${log.errorCode}`);
  });
  log.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  socket.once('close', () => note("'close' event"));
  return log;
}

async function settle(p: Promise<void>, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_LIMIT_MS);
  });
  try {
    await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Blocks the event loop, as CPU-heavy work would, reading sockstate (and
 * the flags) in a tight loop: until `BUSY_AFTER_MS` after the status left
 * `open`, or `WAIT_LIMIT_MS`. Returns the first changed moment and the
 * last one.
 */
function busySample(socket: net.Socket): { first: Moment | null; last: Moment; blockedMs: number } {
  const start = now();
  let first: Moment | null = null;
  let last = moment('end of the busy stretch', socket);
  for (;;) {
    const m = moment('the instant sockstate noticed', socket);
    last = m;
    if (first === null && m.state.status !== 'open') first = m;
    if (first !== null && m.at - first.at >= BUSY_AFTER_MS) break;
    if (m.at - start >= WAIT_LIMIT_MS) break;
  }
  return { first, last: { ...last, label: 'end of the busy stretch' }, blockedMs: now() - start };
}

function since(at: number | undefined | null, acted: number): number | null {
  return at === undefined || at === null ? null : Math.max(0, at - acted);
}

function check(problems: string[], what: string, actual: unknown, expected: unknown): void {
  if (actual !== expected) problems.push(`${what} was ${String(actual)}, expected ${String(expected)}`);
}

async function peerCloses(peer: Peer, kind: 'close' | 'reset'): Promise<Result> {
  const socket = await connect('127.0.0.1', peer.port);
  await peer.next('accepted');
  const events = logEvents(socket);
  peer.send(`${kind} ${PEER_DELAY_MS}`);
  await peer.next('armed');
  const busy = busySample(socket);
  const acted = await peer.acted(kind);
  await settle(events.closed, "the socket's 'close'");
  const problems: string[] = [];
  const m = busy.first;
  if (m === null) problems.push(`sockstate still said open ${formatMs(busy.blockedMs)} into the busy stretch`);
  const nodeSaw = events.errorCode === null ? (events.ended ? "'end' (a clean end)" : "'close' only") : `'error' ${events.errorCode}`;
  const reset = kind === 'reset';
  if (m !== null) {
    check(problems, 'status', m.state.status, reset ? 'reset' : 'peerClosed');
    check(problems, 'tcpState', m.state.tcpState, reset ? 'CLOSE' : 'CLOSE_WAIT');
    check(problems, 'pendingError', m.state.pendingError, reset);
    check(problems, 'unreadBytes', m.state.unreadBytes, 0);
  }
  check(problems, "Node's error after probing", events.errorCode, reset ? 'ECONNRESET' : null);
  return {
    title: reset ? 'The peer resets' : 'The peer closes cleanly',
    story: [
      reset
        ? `The peer (another process) aborts the connection (SO_LINGER 0: an RST) ${PEER_DELAY_MS} ms after we start`
        : `The peer (another process) closes its socket (a FIN) ${PEER_DELAY_MS} ms after we start`,
      `a busy stretch: our event loop is blocked (a busy-wait standing in for CPU-heavy work)`,
      `for ${formatMs(busy.blockedMs)}, reading sockstate in a tight loop meanwhile.`,
    ],
    moments: m === null ? [busy.last] : [m],
    sockstate: { afterMs: since(m?.at, acted), how: 'polled during the busy stretch' },
    flags: { afterMs: since(events.first?.at, acted), how: `${events.first?.how ?? 'no event'}, once the loop was free` },
    notes: [`Node then reported ${nodeSaw}: probing took nothing from it.`],
    expected: reset
      ? 'reset / CLOSE with an error pending: the RST the kernel already holds'
      : "peerClosed / CLOSE_WAIT: the peer's FIN the kernel already holds",
    problems,
  };
}

async function weHalfClose(peer: Peer): Promise<Result> {
  // Held, so the peer's answer stays in the kernel where only sockstate sees it.
  const socket = await connect('127.0.0.1', peer.port, { allowHalfOpen: true, hold: true });
  await peer.next('accepted');
  const events = logEvents(socket);
  const acted = now();
  socket.end();
  let sockAt: number | null = null;
  let flagsAt: number | null = null;
  let final: Moment | null = null;
  const deadline = acted + WAIT_LIMIT_MS;
  while (now() < deadline) {
    const m = moment('the peer has answered our FIN', socket);
    if (sockAt === null && m.state.status === 'localClosed') sockAt = m.at;
    if (flagsAt === null && m.flags.readyState === 'readOnly') flagsAt = m.at;
    // The probe's syscalls are not one atomic read: the peer's answer can
    // land between TCP_INFO and SIOCINQ, counted before the ACK of our FIN
    // it carries shows in the state. The next probe sees both.
    if (sockAt !== null && flagsAt !== null && m.state.unreadBytes >= 4 && m.state.tcpState !== 'FIN_WAIT1') {
      final = m;
      break;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  const problems: string[] = [];
  if (final === null) problems.push(`no localClosed state with the peer's 4-byte answer within ${formatMs(WAIT_LIMIT_MS)}`);
  else {
    check(problems, 'status', final.state.status, 'localClosed');
    check(problems, 'tcpState', final.state.tcpState, 'FIN_WAIT2');
    check(problems, 'pendingError', final.state.pendingError, false);
    check(problems, 'unreadBytes', final.state.unreadBytes, 4);
  }
  socket.destroy();
  await settle(events.closed, "the socket's 'close'");
  return {
    title: 'We half-close',
    story: [
      'We call end() on a socket that allows half-open connections and does not read (paused);',
      "the peer acknowledges our FIN and answers 'bye\\n', which nobody reads yet.",
      'Both views are polled on every loop turn (setImmediate).',
    ],
    moments: final === null ? [moment('after the wait', socket)] : [final],
    sockstate: { afterMs: since(sockAt, acted), how: 'localClosed once libuv has issued shutdown(2)' },
    flags: { afterMs: since(flagsAt, acted), how: "readyState 'readOnly' as soon as end() is called, FIN sent or not" },
    notes: ['FIN_WAIT2 says the peer acknowledged our FIN; unreadBytes shows its answer waiting in the kernel.'],
    expected: 'localClosed / FIN_WAIT2 with 4 bytes unread',
    problems,
  };
}

function httpGet(agent: http.Agent, port: number): Promise<{ body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ body, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.setTimeout(WAIT_LIMIT_MS, () => req.destroy(new Error('request timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(Object.assign(err, { reused: req.reusedSocket }));
    });
  });
}

async function staleKeepAlive(peer: Peer): Promise<Result> {
  peer.send(`http ${KEEPALIVE_IDLE_MS}`);
  await peer.next('armed');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await httpGet(agent, peer.port);
    await peer.next('accepted');
    // The agent parks the socket in its free pool once the response is done.
    let socket: net.Socket | undefined;
    const deadline = now() + WAIT_LIMIT_MS;
    while (socket === undefined && now() < deadline) {
      socket = Object.values(agent.freeSockets)[0]?.[0];
      if (socket === undefined) await new Promise((resolve) => setImmediate(resolve));
    }
    if (socket === undefined) throw new Error('the agent kept no free socket');
    const events = logEvents(socket);
    const busy = busySample(socket);
    const reuse = { ...busy.last, label: 'the instant of reuse' };
    // Reuse it at once, as the stock agent does when the loop comes back.
    let outcome: string;
    try {
      const second = await httpGet(agent, peer.port);
      outcome = `succeeded${second.reused ? ' on the reused socket' : ' on a new connection'}`;
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { reused?: boolean };
      outcome = `failed with ${e.code ?? ''} (${e.message})${e.reused === true ? ' on the reused socket' : ''}`;
    }
    const acted = await peer.acted('close');
    const problems: string[] = [];
    const m = busy.first;
    if (m === null) problems.push(`sockstate still said open ${formatMs(busy.blockedMs)} into the busy stretch`);
    check(problems, 'status at reuse', reuse.state.status, 'peerClosed');
    check(problems, 'tcpState at reuse', reuse.state.tcpState, 'CLOSE_WAIT');
    check(problems, 'pendingError at reuse', reuse.state.pendingError, false);
    return {
      title: 'A stale keep-alive connection about to be reused',
      story: [
        `An http.Agent (keepAlive) got its response; the server closes connections idle for ${KEEPALIVE_IDLE_MS} ms.`,
        `Our event loop is busy for ${formatMs(busy.blockedMs)} (busy-wait), then the next request goes out at once,`,
        'and the agent, seeing only flags, picks the parked socket.',
      ],
      moments: [reuse],
      sockstate: { afterMs: since(m?.at, acted), how: 'polled during the busy stretch' },
      flags: { afterMs: since(events.first?.at, acted), how: `${events.first?.how ?? 'no event'}, after the reuse` },
      notes: [`Node's stock agent reused it: the request ${outcome}.`],
      expected: 'peerClosed / CLOSE_WAIT at the instant of reuse: a check there would have refused it',
      problems,
    };
  } finally {
    agent.destroy();
  }
}

function skipped(title: string, why: string): Result {
  return {
    title,
    story: [],
    moments: [],
    sockstate: { afterMs: null, how: '' },
    flags: { afterMs: null, how: '' },
    notes: [],
    expected: '',
    problems: [],
    skipped: why,
  };
}

function failed(title: string, err: Error): Result {
  const { skipped: _, ...rest } = skipped(title, '');
  return { ...rest, problems: [`could not run: ${err.message}`] };
}

const VANISH_TITLE = 'The peer vanishes silently';

async function vanishingPeer(peerScript: string, register: (cleanup: () => void) => void): Promise<Result> {
  if (process.getuid?.() !== 0) {
    return skipped(VANISH_TITLE, 'needs root, to create a network namespace and a veth pair (try: sudo npx sockstate demo)');
  }
  if (!ipAvailable()) return skipped(VANISH_TITLE, "needs the 'ip' command (iproute2)");
  let ns: Namespace | null = null;
  let peer: Peer | null = null;
  // Registered before anything exists, and each part assigned the moment
  // it does, so that a signal at any point finds what there is to remove.
  register(() => {
    peer?.stop();
    ns?.destroy();
  });
  try {
    ns = createNamespace();
    peer = Peer.spawn([...ns.exec, process.execPath, peerScript, '--host', ns.peerAddress]);
    await peer.ready();
    // The peer runs inside: drop the namespace's name, so that the kernel
    // removes the namespace and the veth pair when the peer exits, however
    // this process ends (the peer exits when its stdin closes).
    ns.release();
    // Held: Node does not poll this fd, so it learns of the timeout only
    // when it next reads, which we let it do right after sockstate has seen it.
    const socket = await connect(ns.peerAddress, peer.port, { hold: true });
    setUserTimeout(socket, USER_TIMEOUT_MS);
    await peer.next('accepted');
    const events = logEvents(socket);
    // The namespace has no name any more: the peer, inside it, cuts its link.
    peer.send(`linkdown ${ns.peerInterface}`);
    await peer.next('acted linkdown ');
    const acted = now();
    socket.write('ping\n');
    let stalled: Moment | null = null;
    let errored: Moment | null = null;
    const deadline = acted + USER_TIMEOUT_MS + WAIT_LIMIT_MS;
    while (now() < deadline) {
      const m = moment('', socket);
      if (stalled === null && m.state.stalled) stalled = { ...m, label: 'kernel retransmitting' };
      if (m.state.status !== 'open') {
        errored = { ...m, label: 'user timeout fired' };
        break;
      }
      await sleep(5);
    }
    socket.resume();
    await settle(events.closed, "the socket's 'close'");
    const problems: string[] = [];
    if (stalled === null) problems.push('sockstate never showed stalled while the kernel retransmitted');
    else {
      check(problems, 'status while retransmitting', stalled.state.status, 'open');
      check(problems, 'tcpState while retransmitting', stalled.state.tcpState, 'ESTABLISHED');
    }
    if (errored === null) problems.push(`no change within ${formatMs(USER_TIMEOUT_MS + WAIT_LIMIT_MS)} of the cut`);
    else {
      check(problems, 'status after the timeout', errored.state.status, 'errored');
      check(problems, 'tcpState after the timeout', errored.state.tcpState, 'CLOSE');
      check(problems, 'pendingError after the timeout', errored.state.pendingError, true);
    }
    check(problems, "Node's error after probing", events.errorCode, 'ETIMEDOUT');
    const moments = [stalled, errored].filter((m): m is Moment => m !== null);
    return {
      title: VANISH_TITLE,
      story: [
        `The peer runs in a network namespace; we set TCP_USER_TIMEOUT to ${USER_TIMEOUT_MS} ms, cut the`,
        "namespace's link (no FIN, no RST, no ICMP) and send 5 bytes. The socket does not read (paused),",
        'so Node learns of the timeout only when it reads again, which we let it do as soon as sockstate',
        'has seen it; sockstate is polled every 5 ms.',
      ],
      moments,
      sockstate: {
        afterMs: since(errored?.at, acted),
        how: `errored; stalled already ${formatMs(since(stalled?.at, acted) ?? Number.NaN)} after the cut`,
      },
      flags: { afterMs: since(events.first?.at, acted), how: `${events.first?.how ?? 'no event'}, once resumed` },
      notes: [`Node then reported 'error' ${events.errorCode ?? 'nothing'}: probing took nothing from it.`],
      expected: 'open + stalled while retransmitting, then errored / CLOSE with an error pending',
      problems,
    };
  } finally {
    peer?.stop();
    ns?.destroy();
  }
}

function yesNo(b: boolean): string {
  return b ? 'true' : 'false';
}

function render(n: number, r: Result, paint: Paint): string[] {
  const out = [`${n}. ${paint.bold(r.title)}`];
  if (r.skipped !== undefined) {
    out.push(`   ${paint.yellow('skipped')}: ${r.skipped}`, '');
    return out;
  }
  out.push(...r.story.map((s) => `   ${s}`), '');
  const rows: string[][] = [
    ['', paint.dim('JS flags'), '', '', '│', paint.dim('sockstate'), '', '', '', ''],
    ['moment', 'destroyed', 'readyState', 'readableEnded', '│', 'status', 'tcpState', 'pendingError', 'unreadBytes', 'stalled'],
  ];
  for (const m of r.moments) {
    rows.push([
      m.label,
      yesNo(m.flags.destroyed),
      m.flags.readyState,
      yesNo(m.flags.readableEnded),
      '│',
      paintStatus(paint, m.state.status),
      m.state.tcpState ?? 'null',
      yesNo(m.state.pendingError),
      String(m.state.unreadBytes),
      yesNo(m.state.stalled),
    ]);
  }
  out.push(...alignColumns(rows, '   '), '');
  const after = (notice: Notice) =>
    notice.afterMs === null ? paint.red('never') : formatMs(notice.afterMs);
  out.push(
    ...alignColumns(
      [
        ['noticed after', 'sockstate', after(r.sockstate), paint.dim(`(${r.sockstate.how})`)],
        ['', 'JS flags', after(r.flags), paint.dim(`(${r.flags.how})`)],
      ],
      '   ',
    ),
  );
  out.push(...r.notes.map((s) => `   ${s}`));
  if (r.problems.length === 0) out.push(`   ${paint.green('✓')} ${r.expected}`);
  else out.push(`   ${paint.red('✗')} expected ${r.expected}`, ...r.problems.map((p) => `     ${paint.red(p)}`));
  out.push('');
  return out;
}

/**
 * Runs the demo, writing to `out`. Returns the exit code: 0 when every
 * scenario that ran behaved as the kernel must, 1 otherwise.
 */
export async function runDemo(out: NodeJS.WriteStream, paint: Paint = createPaint(false)): Promise<number> {
  const print = (lines: readonly string[]) => out.write(`${lines.join('\n')}\n`);
  print([
    `${paint.bold('sockstate demo')}: what Node's socket flags say next to what the kernel says, at the same instant`,
    paint.dim(`sockstate ${packageVersion()}, Node ${process.version}, ${os.type()} ${os.release()}`),
    '',
  ]);
  if (!supported) {
    print([
      paint.red(`The native probe is not available: ${unsupportedReason ?? 'unknown reason'}`),
      '',
      "The demo sets what Node's flags say beside what the kernel says, and only the native probe reads the",
      'kernel, so it has nothing to show until the probe loads. The library itself still works without it,',
      "from Node's socket flags (supported === false): see \"Using it in your project\" in the README.",
    ]);
    return 1;
  }
  const peerScript = path.join(__dirname, 'peer.js');
  const cleanups: (() => void)[] = [];
  const runCleanups = () => {
    for (const c of cleanups.splice(0)) c();
  };
  // Handled for the whole run, and never handed back to the default
  // action midway: a second Ctrl-C while cleaning up is ignored (the
  // clean-up is synchronous and ends in exit). A closed terminal (SIGHUP)
  // cleans up as a Ctrl-C does.
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    runCleanups();
    out.write(`\ninterrupted (${signal}); cleaned up\n`);
    process.exit(128 + (os.constants.signals[signal] ?? 0));
  };
  for (const signal of HANDLED_SIGNALS) process.on(signal, onSignal);
  const results: Result[] = [];
  try {
    const peer = Peer.spawn([process.execPath, peerScript]);
    cleanups.push(() => peer.stop());
    await peer.ready();
    print([paint.dim(`peer: child process ${peer.child.pid}, listening on 127.0.0.1:${peer.port}`), '']);
    const scenarios: [string, () => Promise<Result>][] = [
      ['The peer closes cleanly', () => peerCloses(peer, 'close')],
      ['The peer resets', () => peerCloses(peer, 'reset')],
      ['We half-close', () => weHalfClose(peer)],
      ['A stale keep-alive connection about to be reused', () => staleKeepAlive(peer)],
      [VANISH_TITLE, () => vanishingPeer(peerScript, (c) => cleanups.push(c))],
    ];
    for (const [title, run] of scenarios) {
      let result: Result;
      try {
        result = await run();
      } catch (err) {
        // A signal that arrived meanwhile (and may be why it failed) is
        // handled first: its handler exits before a failure is printed. Two
        // loop turns let libuv dispatch it; a command killed by the signal
        // says so, and then its handler is surely coming.
        await new Promise((resolve) => setImmediate(resolve));
        await new Promise((resolve) => setImmediate(resolve));
        if (err instanceof InterruptedError) await sleep(2000);
        result = failed(title, err as Error);
      }
      results.push(result);
      print(render(results.length, result, paint));
    }
    peer.send('exit');
    peer.stop();
  } finally {
    runCleanups();
    for (const signal of HANDLED_SIGNALS) process.removeListener(signal, onSignal);
  }
  const ran = results.filter((r) => r.skipped === undefined);
  const good = ran.filter((r) => r.problems.length === 0).length;
  const skippedCount = results.length - ran.length;
  const summary = `${good} of ${ran.length} scenarios behaved as the kernel must${skippedCount > 0 ? ` (${skippedCount} skipped)` : ''}.`;
  print([good === ran.length ? paint.green(summary) : paint.red(summary)]);
  return good === ran.length ? 0 : 1;
}
