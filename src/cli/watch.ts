/**
 * `sockstate watch <host:port>`: connects and shows that one connection
 * live, from `connectionState` and `tcpInfo`, until Ctrl-C or until the
 * connection ends.
 *
 * @packageDocumentation
 */
import * as dns from 'node:dns';
import * as net from 'node:net';
import { type ConnectionState, connectionState, SockstateError, supported, type TcpInfo, tcpInfo, unsupportedReason } from '..';
import { type Endpoint, isReservedInvalid, parseEndpoint, parseInteger, parseOptions, UsageError, wantsHelp } from './args';
import { alignColumns, formatBytes, formatUs, jsonLine, type Paint, paintStatus, sparkline } from './format';

/** Options of one `watch` run. */
export interface WatchOptions {
  /** Where to connect. */
  readonly endpoint: Endpoint;
  /** Time between samples, ms. */
  readonly intervalMs: number;
  /** Stop after this many samples; null for no limit. */
  readonly count: number | null;
  /** One JSON object per line instead of the live view. */
  readonly json: boolean;
  /** Send what arrives on stdin to the peer. */
  readonly stdin: boolean;
}

/** Default time between samples, ms. */
export const DEFAULT_INTERVAL_MS = 1000;
/** Accepted `--interval` range, ms. */
export const INTERVAL_RANGE = [10, 3_600_000] as const;
/** How long a connection attempt may take before it counts as failed. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** How many RTT samples the sparkline shows. */
const HISTORY = 40;

/**
 * Parses the arguments after `watch`.
 *
 * @returns The options, or `'help'` when `-h` or `--help` is among them
 *   (whatever else is there: nothing is checked and nothing is contacted).
 * @throws UsageError for an unknown option, a bad value, a missing or
 *   malformed `host:port`, or more than one target.
 */
export function parseWatchArgs(argv: readonly string[]): WatchOptions | 'help' {
  if (wantsHelp(argv)) return 'help';
  // help stays in the spec so that `--help=x` is told it takes no value.
  const { options, positionals } = parseOptions(
    argv,
    { interval: 'value', count: 'value', json: 'flag', stdin: 'flag', help: 'flag' },
    { h: 'help' },
  );
  if (positionals.length === 0) throw new UsageError('watch needs a target: sockstate watch <host:port>');
  if (positionals.length > 1) throw new UsageError(`watch takes one target, got ${positionals.length}: ${positionals.join(' ')}`);
  const interval = options.get('interval');
  const count = options.get('count');
  return {
    endpoint: parseEndpoint(positionals[0]!),
    intervalMs:
      typeof interval === 'string'
        ? parseInteger('interval', interval, INTERVAL_RANGE[0], INTERVAL_RANGE[1], 'ms')
        : DEFAULT_INTERVAL_MS,
    count: typeof count === 'string' ? parseInteger('count', count, 1, 1_000_000_000) : null,
    json: options.has('json'),
    stdin: options.has('stdin'),
  };
}

/** The addresses to try for `host`, in the resolver's order. */
async function resolve(host: string): Promise<dns.LookupAddress[]> {
  const family = net.isIP(host);
  if (family !== 0) return [{ address: host, family }];
  if (isReservedInvalid(host)) {
    throw new UsageError(`cannot resolve '${host}': names under .invalid never resolve (RFC 6761)`, 'ENOTFOUND');
  }
  try {
    return await dns.promises.lookup(host, { all: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EAI_FAIL';
    throw new UsageError(`cannot resolve '${host}' (${code})`, code);
  }
}

function connectTo(address: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      const err = new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms`) as NodeJS.ErrnoException;
      err.code = 'ETIMEDOUT';
      socket.destroy();
      reject(err);
    }, CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function display(endpoint: Endpoint): string {
  return net.isIPv6(endpoint.host) ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

function addressText(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return '?';
  return net.isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Resolves the endpoint and connects to the first address that accepts.
 *
 * @throws UsageError `ENOTFOUND` (or the resolver's code) for a name that
 *   does not resolve; `ECONNREFUSED` when every address refuses; the
 *   connect error's code when no connection can be made.
 */
export async function openConnection(endpoint: Endpoint): Promise<net.Socket> {
  const addresses = await resolve(endpoint.host);
  const failures: NodeJS.ErrnoException[] = [];
  for (const { address } of addresses) {
    try {
      return await connectTo(address, endpoint.port);
    } catch (err) {
      failures.push(err as NodeJS.ErrnoException);
    }
  }
  const tried = addresses.map((a) => addressText(a.address, endpoint.port)).join(', ');
  if (failures.length > 0 && failures.every((f) => f.code === 'ECONNREFUSED')) {
    throw new UsageError(`connection to ${display(endpoint)} refused (tried ${tried})`, 'ECONNREFUSED');
  }
  const last = failures[failures.length - 1];
  const code = last?.code ?? 'ERR_CONNECT';
  throw new UsageError(`cannot connect to ${display(endpoint)} (tried ${tried}): ${code}`, code);
}

/** Why a watch ended. */
export type EndReason = 'peer closed' | 'reset' | 'timed out' | 'closed' | 'interrupted' | 'terminated' | 'count reached' | `error ${string}`;

/** The end reason for an error Node reported on the socket. */
export function reasonForError(code: string | undefined): EndReason {
  switch (code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'ETIMEDOUT':
      return 'timed out';
    default:
      return `error ${code ?? 'unknown'}`;
  }
}

/** The end reason a terminal status implies, before Node has said anything. */
function reasonForStatus(state: ConnectionState): EndReason | null {
  switch (state.status) {
    case 'peerClosed':
      return 'peer closed';
    case 'reset':
      return 'reset';
    case 'errored':
      return 'timed out';
    case 'closed':
      return 'closed';
    default:
      return null;
  }
}

/** One sample: both views of the connection at one instant. */
interface Sample {
  readonly seq: number;
  readonly time: Date;
  readonly elapsedMs: number;
  readonly state: ConnectionState;
  readonly info: TcpInfo | null;
}

function sampleRecord(s: Sample): Record<string, string | number | boolean | bigint | null> {
  const i = s.info;
  return {
    type: 'sample',
    seq: s.seq,
    time: s.time.toISOString(),
    elapsedMs: s.elapsedMs,
    status: s.state.status,
    tcpState: s.state.tcpState,
    pendingError: s.state.pendingError,
    readClosed: s.state.readClosed,
    stalled: s.state.stalled,
    unreadBytes: s.state.unreadBytes,
    unsentBytes: s.state.unsentBytes,
    unackedBytes: s.state.unackedBytes,
    rtt: i?.rtt ?? null,
    rttvar: i?.rttvar ?? null,
    minRtt: i?.minRtt ?? null,
    rto: i?.rto ?? null,
    sndCwnd: i?.sndCwnd ?? null,
    sndSsthresh: i?.sndSsthresh ?? null,
    sndMss: i?.sndMss ?? null,
    unacked: i?.unacked ?? null,
    retransmits: i?.retransmits ?? null,
    totalRetrans: i?.totalRetrans ?? null,
    lost: i?.lost ?? null,
    bytesSent: i?.bytesSent ?? null,
    bytesReceived: i?.bytesReceived ?? null,
    bytesAcked: i?.bytesAcked ?? null,
    segsOut: i?.segsOut ?? null,
    segsIn: i?.segsIn ?? null,
  };
}

function bool(paint: Paint, b: boolean, bad: boolean): string {
  return b === bad ? paint.red(String(b)) : String(b);
}

function renderSample(s: Sample, history: readonly number[], paint: Paint): string[] {
  const i = s.info;
  const st = s.state;
  const rtts = history.map((us) => us / 1000);
  const range =
    rtts.length === 0 ? '' : `${Math.min(...rtts).toFixed(3)}–${Math.max(...rtts).toFixed(3)} ms, last ${rtts.length}`;
  const segs = (n: number | undefined) => (n === undefined ? 'n/a' : `${n} seg`);
  return alignColumns([
    ['status', paintStatus(paint, st.status), 'tcp state', st.tcpState ?? 'null', 'stalled', bool(paint, st.stalled, true)],
    ['rtt', formatUs(i?.rtt), 'rttvar', formatUs(i?.rttvar), 'min rtt', formatUs(i?.minRtt)],
    ['cwnd', segs(i?.sndCwnd), 'mss', i === null ? 'n/a' : `${i.sndMss} B`, 'rto', formatUs(i?.rto)],
    ['sent', formatBytes(i?.bytesSent), 'received', formatBytes(i?.bytesReceived), 'acked', formatBytes(i?.bytesAcked)],
    ['retransmits', i === null ? 'n/a' : String(i.retransmits), 'total', i === null ? 'n/a' : String(i.totalRetrans), 'lost', segs(i?.lost)],
    ['unacked', segs(i?.unacked), 'unread', formatBytes(st.unreadBytes), 'unsent', formatBytes(st.unsentBytes)],
    ['pending error', bool(paint, st.pendingError, true), 'read closed', bool(paint, st.readClosed, true), '', ''],
  ]).concat(`rtt history    ${sparkline(rtts)}  ${paint.dim(range)}`);
}

/** Where watch writes: stdout, plus whether it is a terminal. */
export interface WatchOutput {
  /** The stream samples go to. */
  readonly stream: NodeJS.WritableStream;
  /** Refresh in place (ANSI cursor control) instead of one block per sample. */
  readonly live: boolean;
  /** Colours for the live view. */
  readonly paint: Paint;
}

/**
 * Connects and samples until the connection ends, Ctrl-C, or `count`.
 *
 * @returns The exit code: 0 when the connection ended (peer closed,
 *   reset, timed out), on Ctrl-C or SIGTERM, or after `count` samples; 1
 *   on another socket error.
 * @throws UsageError when the name does not resolve or no connection can
 *   be made (the caller exits with 2).
 */
export async function runWatch(options: WatchOptions, output: WatchOutput): Promise<number> {
  const { stream, live, paint } = output;
  const socket = await openConnection(options.endpoint);
  const started = Date.now();
  const remote = addressText(socket.remoteAddress, socket.remotePort);
  const local = addressText(socket.localAddress, socket.localPort);
  const target = display(options.endpoint);
  const history: number[] = [];
  let seq = 0;
  let lastStatus: ConnectionState | null = null;

  if (options.json) {
    stream.write(
      `${jsonLine({
        type: 'connected',
        target,
        remoteAddress: socket.remoteAddress ?? null,
        remotePort: socket.remotePort ?? null,
        localAddress: socket.localAddress ?? null,
        localPort: socket.localPort ?? null,
        intervalMs: options.intervalMs,
        source: supported ? 'kernel' : 'flags',
        time: new Date(started).toISOString(),
      })}\n`,
    );
  } else {
    if (live) stream.write('\x1b[2J');
    if (!supported) process.stderr.write(`sockstate: no kernel view, Node's flags only: ${unsupportedReason ?? 'unknown reason'}\n`);
  }

  // Received data is read and dropped: a watcher must not fill the window.
  socket.on('data', () => {});
  // Traffic of our own makes rtt, cwnd and bytes sent move; stdin's end is
  // not passed on, so the connection stays open.
  if (options.stdin) process.stdin.pipe(socket, { end: false });

  function take(): Sample | null {
    if (socket.destroyed) return null;
    const state = connectionState(socket);
    let info: TcpInfo | null = null;
    try {
      // Without the addon the state comes from flags and there is no tcp_info.
      if (supported) info = tcpInfo(socket);
    } catch (err) {
      // Between the two calls the socket can lose its fd; anything else is a bug.
      if (!(err instanceof SockstateError && err.code === 'ERR_SOCKSTATE_NO_FD')) throw err;
    }
    seq++;
    const now = Date.now();
    return { seq, time: new Date(now), elapsedMs: now - started, state, info };
  }

  function show(s: Sample): void {
    lastStatus = s.state;
    if (s.info !== null && s.state.tcpState !== 'CLOSE') {
      history.push(s.info.rtt);
      if (history.length > HISTORY) history.shift();
    }
    if (options.json) {
      stream.write(`${jsonLine(sampleRecord(s))}\n`);
      return;
    }
    const elapsed = `${(s.elapsedMs / 1000).toFixed(1)} s`;
    const head = `${paint.bold(`sockstate watch ${target}`)}  ${paint.dim(`${local} → ${remote}`)}`;
    const sub = paint.dim(`sample ${s.seq} at ${s.time.toISOString()} (+${elapsed}), every ${options.intervalMs} ms`);
    const lines = [head, sub, ...renderSample(s, history, paint)];
    if (live) {
      stream.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\n${paint.dim('Ctrl-C to stop')}\x1b[K\n\x1b[J`);
    } else {
      stream.write(`${lines.join('\n')}\n\n`);
    }
  }

  return new Promise<number>((resolveExit) => {
    let done = false;
    let fallback: NodeJS.Timeout | null = null;

    const finish = (reason: EndReason, code: string | null): void => {
      if (done) return;
      done = true;
      clearInterval(timer);
      if (fallback !== null) clearTimeout(fallback);
      process.removeListener('SIGINT', onSigint);
      process.removeListener('SIGTERM', onSigterm);
      if (reason === 'peer closed') {
        const last = take();
        if (last !== null) show(last);
      }
      if (options.stdin) {
        process.stdin.unpipe(socket);
        process.stdin.destroy();
      }
      socket.destroy();
      const durationMs = Date.now() - started;
      if (options.json) {
        stream.write(`${jsonLine({ type: 'end', reason, code, samples: seq, durationMs })}\n`);
      } else {
        const why = code === null ? reason : `${reason} (${code})`;
        const colour = reason === 'reset' || reason === 'timed out' || reason.startsWith('error') ? paint.red : paint.yellow;
        stream.write(`ended: ${colour(why)} after ${(durationMs / 1000).toFixed(1)} s, ${seq} samples\n`);
      }
      resolveExit(reason.startsWith('error') ? 1 : 0);
    };

    const tick = (): void => {
      if (done) return;
      const s = take();
      if (s === null) return;
      show(s);
      if (options.count !== null && s.seq >= options.count) {
        finish('count reached', null);
        return;
      }
      // Node reports the end itself on the next loop turn; this only
      // covers a socket whose events never come.
      const implied = reasonForStatus(s.state);
      if (implied !== null && fallback === null) {
        fallback = setTimeout(() => finish(implied, null), 1000);
      }
    };

    const onSigint = (): void => finish('interrupted', null);
    const onSigterm = (): void => finish('terminated', null);
    process.once('SIGINT', onSigint);
    process.once('SIGTERM', onSigterm);
    socket.on('end', () => finish('peer closed', null));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(reasonForError(err.code), err.code ?? null));
    socket.on('close', () => finish(lastStatus === null ? 'closed' : (reasonForStatus(lastStatus) ?? 'closed'), null));
    const timer = setInterval(tick, options.intervalMs);
    tick();
  });
}
