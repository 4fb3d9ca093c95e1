/**
 * The connection tracker behind `sockstate/prometheus` and `sockstate/otel`:
 * which connections to watch, one off-thread kernel sweep per scrape, and
 * per-(role, scope) aggregates that the exporters read.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { connectionChannel, type ConnectionMessage, reuseCheckChannel, type ReuseCheckMessage } from '../policy/channel';
import { codedError, invalidArgType } from '../errors';
import { native } from '../probe/native';
import { tcpStatus, type TcpStateName } from '../probe/state';
import { targetFd } from '../probe/target';
import { bucketOf, RTT_BUCKETS_SECONDS } from './buckets';
import {
  checkCount,
  checkMs,
  checkOptions,
  checkRole,
  checkScope,
  DEFAULT_MAX_SCOPES,
  own,
  ScopeSet,
  TRACKED_STATUSES,
  type TrackedStatus,
  type TrackRole,
} from './labels';

/** Options of {@link TcpTracker.track}. */
export interface TrackOptions {
  /** A short name for the listener, pool or upstream (a label value); `'default'` when absent. */
  scope?: string;
  /** `'server'` (the default for a `net.Server`) or `'client'` (the default otherwise). */
  role?: TrackRole;
}

/** What {@link TcpTracker.track} returns. */
export interface TrackHandle {
  /** Stops tracking this target and the connections tracked through it. Idempotent. */
  stop(): void;
  /** Connections currently tracked through this handle. */
  readonly connections: number;
}

/** Options every tracker accepts. */
export interface TrackerOptions {
  /** Cap on distinct scopes; a track() past it throws `ERR_SOCKSTATE_TOO_MANY_SCOPES`. Default 32. */
  maxScopes?: number;
  /**
   * An open connection counts as silent when the peer has sent nothing,
   * ACKs included, for longer than this (by the kernel's clocks in
   * tcp_info). Default 60000.
   */
  maxSilentMs?: number;
}

/** Figures for one (role, scope) pair, as of the last sweep. */
export interface MetricGroup {
  /** The role label. */
  readonly role: TrackRole;
  /** The scope label. */
  readonly scope: string;
  /** Connections per status, in the order of {@link TRACKED_STATUSES}, at the last sweep. */
  readonly statusCounts: Float64Array;
  /** Sum of tcpi_retrans (segments being retransmitted now) at the last sweep. */
  retransNow: number;
  /** Sum of tcpi_lost (segments considered lost now) at the last sweep. */
  lostNow: number;
  /** Open connections silent for longer than maxSilentMs at the last sweep. */
  silentNow: number;
  /** RTT observations per bucket of {@link RTT_BUCKETS_SECONDS} (+Inf last), not cumulative across buckets; grows over time. */
  readonly rttBuckets: Float64Array;
  /** Sum of observed RTTs, seconds. */
  rttSum: number;
  /** Number of RTT observations. */
  rttCount: number;
  /** Retransmitted segments (tcpi_total_retrans deltas), ever. */
  retransmittedSegments: number;
  /** Segments sent (tcpi_segs_out deltas), ever. */
  segmentsSent: number;
  /**
   * Data bytes the peer acknowledged, ever: tcpi_bytes_acked less our SYN
   * and our FIN, which the kernel counts as one byte each.
   */
  bytesSent: number;
  /** Data bytes received, read or not, ever: tcpi_bytes_received less the peer's FIN. */
  bytesReceived: number;
  /** Connections whose final figures were taken at close, ever. */
  closed: number;
}

interface HandleRecord {
  readonly role: TrackRole;
  readonly scope: string;
  readonly group: number;
  /** Tracks one socket: the record goes once that socket is let go. */
  readonly single: boolean;
  readonly sockets: Set<net.Socket>;
  readonly pending: Map<net.Socket, () => void>;
  stopped: boolean;
  detach: (() => void) | null;
}

const U32 = 2 ** 32;
const PREV = 4; // per slot: totalRetrans, segsOut, bytesAcked, bytesReceived
// The main thread's share of a sweep is cut into turns of the event loop
// of at most about SLICE_MS each, the clock read every BLOCK rows: bounded
// in time on any machine, not just in rows.
const BLOCK = 256;
const SLICE_MS = 1;
const MAX_REASONS = 16;
const UNKNOWN = TRACKED_STATUSES.indexOf('unknown');
const destroyHook = Symbol('sockstate.metrics.destroy');
// Most RTT observations kept between two takeRttLog() calls: 12 bytes each.
const RTT_LOG_MAX = 1 << 18;

// What the final sample's caller knows of how the connection ended.
const EOF_READ = 1; // Node read the peer's FIN
const ERRORED = 2; // Node destroyed the socket with an error

type Destroy = (this: net.Socket, error: Error | null, callback: (error?: Error | null) => void) => void;
type Hooked = net.Socket & { [destroyHook]?: { original: Destroy; hadOwn: boolean; wrapper: Destroy } };

// One 'close' listener for every tracked socket (`this` is the socket),
// and the trackers that track it: a safety net, since a socket whose handle
// closed without passing _destroy (which Node never does) must not hold
// its slot forever.
const trackersOf = new WeakMap<net.Socket, TcpTracker[]>();
function closeListener(this: net.Socket): void {
  for (const tracker of trackersOf.get(this) ?? []) tracker.forget(this);
}

function noop(): void {}

/** 1 per kernel state number named in `wanted`. */
function stateSet(names: readonly (string | undefined)[], wanted: readonly string[]): Uint8Array {
  const set = new Uint8Array(Math.max(names.length, 16));
  names.forEach((name, i) => {
    if (name !== undefined && wanted.includes(name)) set[i] = 1;
  });
  return set;
}

/** Whether a server accepted the socket (Node sets `server` on both a raw and a TLS accepted socket). */
function accepted(socket: net.Socket): boolean {
  return (socket as { server?: unknown }).server != null;
}

/** Status index per kernel state number (CLOSE resolved per row). */
function statusTable(names: readonly (string | undefined)[]): Int8Array {
  const table = new Int8Array(Math.max(names.length, 16)).fill(TRACKED_STATUSES.indexOf('unknown'));
  names.forEach((name, i) => {
    if (name === undefined) return;
    const status = tcpStatus(name as TcpStateName, false, false);
    const index = TRACKED_STATUSES.indexOf(status as TrackedStatus);
    if (index >= 0) table[i] = index;
  });
  return table;
}

/**
 * Tracks TCP connections for metrics. Each {@link collect} is one sweep of
 * every tracked connection on the libuv thread pool (cookie-checked, see
 * `probeManyAsync`); concurrent callers share it, so one scrape costs one
 * sweep however many metrics read it. Each connection's final figures are
 * taken synchronously just before its fd is closed (from the socket's
 * `_destroy`, which every way of closing a Node socket passes through), so
 * counters include all of a connection's life exactly once.
 */
export class TcpTracker {
  private readonly scopes: ScopeSet;
  private readonly maxSilentMs: number;
  private readonly groupIndex = new Map<string, number>();
  private readonly groupList: MetricGroup[] = [];
  private readonly owners = new Map<object, HandleRecord>();
  private readonly records = new Set<HandleRecord>();
  private readonly reuse = new Map<string, Map<string, number>>();
  private readonly slotOf = new Map<net.Socket, number>();
  private readonly handleOfSlot: (HandleRecord | undefined)[] = [];
  private sockets: (net.Socket | undefined)[] = [];
  private cookies = new BigUint64Array(0);
  private cookie32 = new Uint32Array(0);
  private groupOf = new Int32Array(0);
  private prev = new Float64Array(0);
  private observed = new Uint8Array(0);
  // Per slot: 1 when tcpi_bytes_acked counts our SYN (we opened the connection).
  private syn = new Uint8Array(0);
  // Per slot: 1 once a sample showed that the peer's FIN had arrived.
  private finIn = new Uint8Array(0);
  private readonly free: number[] = [];
  private top = 0;
  private inflight: Promise<void> | null = null;
  // Sweep buffers, reused: only one sweep runs at a time.
  private sweepFds = new Int32Array(0);
  private sweepCookies = new BigUint64Array(0);
  private sweepCookie32 = new Uint32Array(0);
  private sweepSlots = new Int32Array(0);
  private sweepOut = new Float64Array(0);
  private stopped = false;
  private subscribed = false;
  private readonly one = new Int32Array(1);
  private readonly finalRow: Float64Array;
  private readonly status: Int8Array;
  private readonly S: NonNullable<typeof native>['sampleSlots'] | null;
  private readonly stateClose: number;
  private readonly stateEstablished: number;
  private readonly stateCloseWait: number;
  private readonly pollErr: number;
  // States in which the peer's FIN has arrived, and (for kernels without
  // tcpi_bytes_sent) in which ours has been acknowledged.
  private readonly peerFinStates: Uint8Array;
  private readonly ourFinAckedStates: Uint8Array;

  private readonly onConnection = (message: unknown): void => this.adopt(message as ConnectionMessage);
  private readonly onReuseCheck = (message: unknown): void => this.countCheck(message as ReuseCheckMessage);
  private rttLog: Float64Array | null = null;
  private rttLogGroups = new Int32Array(0);
  private rttLogLength = 0;
  private taking: Promise<void> | null = null;
  /** RTT observations left out of the log because it was full (see {@link logRtts}). */
  rttLogDropped = 0;
  /** Sweeps made. */
  sweeps = 0;
  /** Rows dropped because the fd no longer named the tracked socket when the worker read it. */
  dropped = 0;

  /** @param options - See {@link TrackerOptions}. */
  constructor(options?: TrackerOptions) {
    const opts = checkOptions(options, 'options');
    this.scopes = new ScopeSet(checkCount(own(opts, 'maxScopes'), 'options.maxScopes', DEFAULT_MAX_SCOPES, 10_000));
    this.maxSilentMs = checkMs(own(opts, 'maxSilentMs'), 'options.maxSilentMs', 60_000);
    this.finalRow = new Float64Array(native === null ? 0 : native.sampleSlots.COUNT);
    this.status = statusTable(native === null ? [] : native.tcpStates);
    this.S = native === null ? null : native.sampleSlots;
    this.stateClose = native === null ? -1 : native.tcpStates.indexOf('CLOSE');
    this.stateEstablished = native === null ? -1 : native.tcpStates.indexOf('ESTABLISHED');
    this.stateCloseWait = native === null ? -1 : native.tcpStates.indexOf('CLOSE_WAIT');
    this.pollErr = native === null ? 0 : native.pollFlags.POLLERR;
    const states = native === null ? [] : native.tcpStates;
    this.peerFinStates = stateSet(states, ['CLOSE_WAIT', 'LAST_ACK', 'CLOSING', 'TIME_WAIT']);
    this.ourFinAckedStates = stateSet(states, ['FIN_WAIT2', 'TIME_WAIT']);
  }

  /** The aggregates, one per (role, scope) pair tracked so far. */
  get groups(): readonly MetricGroup[] {
    return this.groupList;
  }

  /** Reuse checks counted per scope and result (the verdict's reason). */
  get reuseChecks(): ReadonlyMap<string, ReadonlyMap<string, number>> {
    return this.reuse;
  }

  /**
   * Keeps every RTT observation (seconds, with its group) until
   * {@link takeRttLog}, for exporters that record values one by one; at
   * most 262,144 between two takes (the rest are counted in
   * {@link rttLogDropped}), so an exporter nobody collects stays bounded.
   */
  logRtts(): void {
    if (this.rttLog === null) {
      this.rttLog = new Float64Array(256);
      this.rttLogGroups = new Int32Array(256);
    }
  }

  /**
   * Hands `fn` the RTT observations logged since the last call, then forgets
   * them. Yields to the event loop every `chunk` values. A call made while
   * another one is handing values out resolves only after it, then takes
   * what was logged since: collections by several readers at once all
   * return with every value recorded.
   */
  async takeRttLog(fn: (group: number, seconds: number) => void, chunk: number): Promise<void> {
    while (this.taking !== null) await this.taking.then(noop, noop);
    const taking = this.drainRttLog(fn, chunk);
    this.taking = taking;
    try {
      await taking;
    } finally {
      if (this.taking === taking) this.taking = null;
    }
  }

  private async drainRttLog(fn: (group: number, seconds: number) => void, chunk: number): Promise<void> {
    const log = this.rttLog;
    if (log === null) return;
    const n = this.rttLogLength;
    const values = log.slice(0, n);
    const groups = this.rttLogGroups.slice(0, n);
    this.rttLogLength = 0;
    for (let i = 0; i < n; i++) {
      if (i > 0 && i % chunk === 0) await yieldToLoop();
      fn(groups[i]!, values[i]!);
    }
  }

  /** Forgets a socket whose handle closed without passing `_destroy`; no final figures. */
  forget(socket: net.Socket): void {
    const slot = this.slotOf.get(socket);
    if (slot !== undefined) this.untrack(socket, slot);
  }

  /** Connections tracked now. */
  get size(): number {
    return this.slotOf.size;
  }

  /**
   * Targets held now: one per live handle of a server or guard, one per
   * tracked socket until that socket is let go.
   *
   * @internal
   */
  get recordCount(): number {
    return this.records.size;
  }

  /**
   * Starts tracking `target`: a `net.Server` (each connection it accepts
   * from now on), a connected `net.Socket`/`tls.TLSSocket` (from `'connect'`
   * if still connecting), or a sockstate guard (an HTTP agent, the undici
   * agent, a pool guard: each connection it announces on the
   * `sockstate:connection` channel, and each reuse check it reports).
   *
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a
   *   bad target or option; SockstateError `ERR_SOCKSTATE_TOO_MANY_SCOPES`,
   *   `ERR_SOCKSTATE_TRACKER_STOPPED`.
   */
  track(target: net.Server | net.Socket | object, options?: TrackOptions): TrackHandle {
    if (this.stopped) throw codedError('ERR_SOCKSTATE_TRACKER_STOPPED', 'track(): the tracker was stopped');
    if (typeof target !== 'object' || target === null) {
      throw invalidArgType('target', 'an instance of net.Server or net.Socket, or a sockstate agent or pool guard', target);
    }
    const opts = checkOptions(options, 'options');
    const scope = checkScope(own(opts, 'scope'), 'options.scope');
    const role = checkRole(own(opts, 'role'), 'options.role', target instanceof net.Server ? 'server' : 'client');
    this.scopes.admit(scope);
    const record: HandleRecord = {
      role,
      scope,
      group: this.groupFor(role, scope),
      single: target instanceof net.Socket,
      sockets: new Set(),
      pending: new Map(),
      stopped: false,
      detach: null,
    };
    this.records.add(record);
    if (target instanceof net.Server) {
      const onConnection = (socket: net.Socket): void => this.trackSocket(socket, record);
      target.on('connection', onConnection);
      record.detach = () => target.off('connection', onConnection);
    } else if (target instanceof net.Socket) {
      this.trackSocket(target, record);
      // Not tracked (closed, not TCP, already tracked, no addon): nothing to hold.
      this.settle(record);
    } else {
      const previous = this.owners.get(target);
      if (previous !== undefined) this.stopRecord(previous);
      this.owners.set(target, record);
      this.subscribe();
      record.detach = () => {
        if (this.owners.get(target) === record) this.owners.delete(target);
      };
    }
    return {
      stop: () => this.stopRecord(record),
      get connections() {
        return record.sockets.size;
      },
    };
  }

  /**
   * One sweep of every tracked connection, off the main thread; resolves
   * when {@link groups} hold its figures. Calls made while one runs share it.
   */
  collect(): Promise<void> {
    if (this.inflight === null) {
      this.inflight = this.sweep().finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  /** Stops tracking everything and drops every listener and subscription. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const record of [...this.records]) this.stopRecord(record);
    if (this.subscribed) {
      connectionChannel.unsubscribe(this.onConnection);
      reuseCheckChannel.unsubscribe(this.onReuseCheck);
      this.subscribed = false;
    }
  }

  private groupFor(role: TrackRole, scope: string): number {
    const key = `${role}\u0000${scope}`;
    let index = this.groupIndex.get(key);
    if (index === undefined) {
      index = this.groupList.length;
      this.groupIndex.set(key, index);
      this.groupList.push({
        role,
        scope,
        statusCounts: new Float64Array(TRACKED_STATUSES.length),
        retransNow: 0,
        lostNow: 0,
        silentNow: 0,
        rttBuckets: new Float64Array(RTT_BUCKETS_SECONDS.length + 1),
        rttSum: 0,
        rttCount: 0,
        retransmittedSegments: 0,
        segmentsSent: 0,
        bytesSent: 0,
        bytesReceived: 0,
        closed: 0,
      });
    }
    return index;
  }

  private subscribe(): void {
    if (this.subscribed) return;
    connectionChannel.subscribe(this.onConnection);
    reuseCheckChannel.subscribe(this.onReuseCheck);
    this.subscribed = true;
  }

  private adopt(message: ConnectionMessage): void {
    const record = this.owners.get(message.owner);
    if (record !== undefined && message.socket instanceof net.Socket) this.trackSocket(message.socket, record);
  }

  private countCheck(message: ReuseCheckMessage): void {
    const record = this.owners.get(message.owner);
    if (record === undefined) return;
    let results = this.reuse.get(record.scope);
    if (results === undefined) this.reuse.set(record.scope, (results = new Map()));
    // Reasons come from one core function and are few; cap them anyway.
    const reason = typeof message.reason === 'string' ? message.reason : 'other';
    const result = results.has(reason) || results.size < MAX_REASONS ? reason : 'other';
    results.set(result, (results.get(result) ?? 0) + 1);
  }

  private trackSocket(socket: net.Socket, record: HandleRecord): void {
    if (record.stopped || this.stopped || native === null) return;
    if (this.slotOf.has(socket) || record.pending.has(socket) || socket.destroyed) return;
    if (socket.connecting) {
      // A connect that fails never emits 'connect': 'close' lets it go.
      const cancel = (): void => {
        socket.off('connect', onConnect);
        socket.off('close', onClose);
        record.pending.delete(socket);
      };
      const onConnect = (): void => {
        cancel();
        this.register(socket, record);
        this.settle(record);
      };
      const onClose = (): void => {
        cancel();
        this.settle(record);
      };
      record.pending.set(socket, cancel);
      socket.once('connect', onConnect);
      socket.once('close', onClose);
      return;
    }
    this.register(socket, record);
  }

  private register(socket: net.Socket, record: HandleRecord): void {
    if (record.stopped || this.stopped || this.slotOf.has(socket)) return;
    const fd = targetFd(socket, 'socket');
    if (fd < 0) return;
    // Only TCP sockets (TCP_INFO answers) with a cookie are tracked.
    if (native!.sample(fd, this.finalRow, 0) !== 0) return;
    const slot = this.allocate();
    this.one[0] = fd;
    if (native!.cookies(this.one, this.cookies, slot) !== 0) {
      this.release(slot);
      return;
    }
    this.sockets[slot] = socket;
    this.groupOf[slot] = record.group;
    this.handleOfSlot[slot] = record;
    this.syn[slot] = this.countsOurSyn(socket, this.finalRow);
    if (this.peerFinStates[this.finalRow[this.S!.STATE]!] === 1) this.finIn[slot] = 1;
    this.slotOf.set(socket, slot);
    record.sockets.add(socket);
    this.hook(socket as Hooked);
    const trackers = trackersOf.get(socket);
    if (trackers === undefined) {
      trackersOf.set(socket, [this]);
      socket.on('close', closeListener);
    } else {
      trackers.push(this);
    }
  }

  // One wrapper per socket, whichever tracker installed it, finishing every
  // tracker of the socket: trackers that come and go in any order never
  // unwrap each other, and a stopped tracker leaves nothing behind.
  private hook(socket: Hooked): void {
    if (socket[destroyHook] !== undefined) return;
    const hadOwn = Object.hasOwn(socket, '_destroy');
    const original = socket._destroy as Destroy;
    const wrapper: Destroy = function (this: net.Socket, error, callback) {
      // The fd is still open here; by 'close' it is gone.
      const ended = (this as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
      const evidence = (ended ? EOF_READ : 0) | (error != null ? ERRORED : 0);
      for (const tracker of [...(trackersOf.get(socket) ?? [])]) tracker.finish(socket, evidence);
      return original.call(this, error, callback);
    };
    socket[destroyHook] = { original, hadOwn, wrapper };
    socket._destroy = wrapper;
  }

  // Once the socket's last tracker has left.
  private static unhook(socket: Hooked): void {
    const hook = socket[destroyHook];
    if (hook === undefined) return;
    delete socket[destroyHook];
    // Restore only if nobody wrapped it after us; else the wrapper stays,
    // and finds no tracker to finish.
    if (socket._destroy !== hook.wrapper) return;
    if (hook.hadOwn) socket._destroy = hook.original;
    else delete (socket as { _destroy?: unknown })._destroy;
  }

  // Final figures, before the fd closes.
  private finish(socket: net.Socket, evidence: number): void {
    const slot = this.slotOf.get(socket);
    if (slot === undefined) return;
    const fd = targetFd(socket, 'socket');
    if (fd >= 0 && native!.sample(fd, this.finalRow, 0) === 0) {
      this.apply(slot, this.finalRow, 0, false, evidence);
      this.groupList[this.groupOf[slot]!]!.closed++;
    }
    this.untrack(socket, slot);
  }

  private untrack(socket: net.Socket, slot: number): void {
    const trackers = trackersOf.get(socket);
    if (trackers !== undefined) {
      const i = trackers.indexOf(this);
      if (i >= 0) trackers.splice(i, 1);
      if (trackers.length === 0) {
        trackersOf.delete(socket);
        socket.off('close', closeListener);
        TcpTracker.unhook(socket as Hooked);
      }
    }
    const record = this.handleOfSlot[slot];
    this.slotOf.delete(socket);
    this.release(slot);
    if (record !== undefined) {
      record.sockets.delete(socket);
      this.settle(record);
    }
  }

  // A record of one socket goes with it: else each track(socket) of a
  // short connection would stay in `records` for the tracker's life.
  private settle(record: HandleRecord): void {
    if (!record.single || record.stopped || record.sockets.size > 0 || record.pending.size > 0) return;
    record.stopped = true;
    this.records.delete(record);
  }

  // Whether tcpi_bytes_acked counts our SYN, i.e. we opened the connection.
  // With nothing in flight and no FIN of ours sent, the kernel says it
  // exactly (bytes acked = data sent + the SYN); else Node does.
  private countsOurSyn(socket: net.Socket, row: Float64Array): number {
    const S = this.S!;
    const state = row[S.STATE]!;
    const extra = row[S.BYTES_ACKED]! - (row[S.BYTES_SENT]! - row[S.BYTES_RETRANS]!);
    if ((state === this.stateEstablished || state === this.stateCloseWait) && row[S.UNACKED] === 0 && (extra === 0 || extra === 1)) {
      return extra;
    }
    return accepted(socket) ? 0 : 1;
  }

  private stopRecord(record: HandleRecord): void {
    if (record.stopped) return;
    record.stopped = true;
    this.records.delete(record);
    record.detach?.();
    for (const cancel of record.pending.values()) cancel();
    record.pending.clear();
    for (const socket of [...record.sockets]) {
      const slot = this.slotOf.get(socket);
      if (slot !== undefined) this.untrack(socket, slot);
    }
  }

  private allocate(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.top === this.groupOf.length) this.grow(Math.max(64, this.top * 2));
    return this.top++;
  }

  private release(slot: number): void {
    this.sockets[slot] = undefined;
    this.handleOfSlot[slot] = undefined;
    this.cookies[slot] = 0n;
    this.prev.fill(0, slot * PREV, slot * PREV + PREV);
    this.observed[slot] = 0;
    this.syn[slot] = 0;
    this.finIn[slot] = 0;
    this.free.push(slot);
  }

  private grow(capacity: number): void {
    const cookies = new BigUint64Array(capacity);
    cookies.set(this.cookies);
    this.cookies = cookies;
    this.cookie32 = new Uint32Array(cookies.buffer);
    const groupOf = new Int32Array(capacity);
    groupOf.set(this.groupOf);
    this.groupOf = groupOf;
    const prev = new Float64Array(capacity * PREV);
    prev.set(this.prev);
    this.prev = prev;
    const observed = new Uint8Array(capacity);
    observed.set(this.observed);
    this.observed = observed;
    const syn = new Uint8Array(capacity);
    syn.set(this.syn);
    this.syn = syn;
    const finIn = new Uint8Array(capacity);
    finIn.set(this.finIn);
    this.finIn = finIn;
  }

  // Adds one row's figures to its group: counter deltas always; at a sweep
  // also the gauges and one RTT observation; at close an RTT observation
  // only for a connection no sweep has seen. `evidence` (EOF_READ,
  // ERRORED) comes with the final row only.
  private apply(slot: number, rows: Float64Array, base: number, sweep: boolean, evidence = 0): void {
    const S = this.S!;
    const group = this.groupList[this.groupOf[slot]!]!;
    const p = slot * PREV;
    const prev = this.prev;
    let d = rows[base + S.TOTAL_RETRANS]! - prev[p]!;
    if (d < 0) d += U32;
    group.retransmittedSegments += d;
    prev[p] = rows[base + S.TOTAL_RETRANS]!;
    const segs = rows[base + S.SEGS_OUT]!;
    if (segs === segs) {
      d = segs - prev[p + 1]!;
      if (d < 0) d += U32;
      group.segmentsSent += d;
      prev[p + 1] = segs;
    }
    // Data bytes only: the kernel's byte counters include our SYN (when we
    // opened the connection), our FIN once acked, and the peer's FIN once
    // arrived, one byte each. Where a row cannot tell, a sweep takes the
    // lower figure and the final row decides: the counters only go up.
    const state = rows[base + S.STATE]!;
    if (this.peerFinStates[state] === 1) this.finIn[slot] = 1;
    const acked = rows[base + S.BYTES_ACKED]! - this.syn[slot]!;
    // Data sent at least once (4.19+, else NaN): our FIN is acked exactly
    // when the peer acknowledged one byte more than that.
    const sentOnce = rows[base + S.BYTES_SENT]! - rows[base + S.BYTES_RETRANS]!;
    const closed = state === this.stateClose;
    let ourFinAcked: boolean;
    if (sentOnce === sentOnce) ourFinAcked = acked > sentOnce;
    else ourFinAcked = this.ourFinAckedStates[state] === 1 || (closed && (sweep || (evidence & ERRORED) === 0));
    // CLOSE follows a graceful close (both FINs) or a reset or timeout
    // (maybe after the peer's FIN): Node's EOF, an earlier sample, or a
    // close of ours acked without error says the peer's FIN came.
    const peerFin =
      this.finIn[slot] === 1 ||
      (closed && (sweep || (evidence & EOF_READ) !== 0 || (ourFinAcked && (evidence & ERRORED) === 0)));
    const sentData = sentOnce === sentOnce ? Math.min(acked, sentOnce) : acked - (ourFinAcked ? 1 : 0);
    if (sentData > prev[p + 2]!) {
      group.bytesSent += sentData - prev[p + 2]!;
      prev[p + 2] = sentData;
    }
    const receivedData = rows[base + S.BYTES_RECEIVED]! - (peerFin ? 1 : 0);
    if (receivedData > prev[p + 3]!) {
      group.bytesReceived += receivedData - prev[p + 3]!;
      prev[p + 3] = receivedData;
    }
    const rtt = rows[base + S.RTT]!;
    if (sweep) {
      let status = this.status[state] ?? UNKNOWN;
      if (state === this.stateClose) {
        const pendingError = (rows[base + S.REVENTS]! & this.pollErr) !== 0;
        const name = tcpStatus('CLOSE', pendingError, rows[base + S.STALLED] === 1);
        status = TRACKED_STATUSES.indexOf(name as TrackedStatus);
      }
      group.statusCounts[status]!++;
      group.retransNow += rows[base + S.RETRANS]!;
      group.lostNow += rows[base + S.LOST]!;
      if (
        state === this.stateEstablished &&
        Math.min(rows[base + S.LAST_ACK_RECV]!, rows[base + S.LAST_DATA_RECV]!) > this.maxSilentMs
      ) {
        group.silentNow++;
      }
    }
    if (rtt > 0 && (sweep || this.observed[slot] === 0)) {
      const seconds = rtt / 1e6;
      group.rttBuckets[bucketOf(RTT_BUCKETS_SECONDS, seconds)]!++;
      group.rttSum += seconds;
      group.rttCount++;
      this.observed[slot] = 1;
      if (this.rttLog !== null) this.logRtt(this.groupOf[slot]!, seconds);
    }
  }

  private logRtt(group: number, seconds: number): void {
    let log = this.rttLog!;
    // An exporter that is never collected must not grow the log without
    // end: past the cap, observations still reach the aggregates, not the log.
    if (this.rttLogLength >= RTT_LOG_MAX) {
      this.rttLogDropped++;
      return;
    }
    if (this.rttLogLength === log.length) {
      log = new Float64Array(log.length * 2);
      log.set(this.rttLog!);
      this.rttLog = log;
      const groups = new Int32Array(log.length);
      groups.set(this.rttLogGroups);
      this.rttLogGroups = groups;
    }
    log[this.rttLogLength] = seconds;
    this.rttLogGroups[this.rttLogLength++] = group;
  }

  private async sweep(): Promise<void> {
    if (native === null) return;
    const SL = native.sampleSlots.COUNT;
    const n = this.top;
    if (this.sweepFds.length < n) {
      const capacity = Math.max(n, this.sweepFds.length * 2);
      this.sweepFds = new Int32Array(capacity);
      this.sweepCookies = new BigUint64Array(capacity);
      this.sweepCookie32 = new Uint32Array(this.sweepCookies.buffer);
      this.sweepSlots = new Int32Array(capacity);
      this.sweepOut = new Float64Array(capacity * SL);
    }
    const fds = this.sweepFds;
    const cookies = this.sweepCookies;
    const c32 = this.sweepCookie32;
    const slots = this.sweepSlots;
    const out = this.sweepOut;
    let rows = 0;
    let slice = performance.now();
    // Gathering fds: the cookie of each slot was read when it was
    // registered; the worker checks it against the fd's current one.
    for (let s = 0; s < n; s++) {
      if (s % BLOCK === 0 && s > 0 && performance.now() - slice > SLICE_MS) {
        await yieldToLoop();
        slice = performance.now();
      }
      const socket = this.sockets[s];
      if (socket === undefined) continue;
      const fd = targetFd(socket, 'socket');
      if (fd < 0) continue;
      fds[rows] = fd;
      slots[rows] = s;
      c32[2 * rows] = this.cookie32[2 * s]!;
      c32[2 * rows + 1] = this.cookie32[2 * s + 1]!;
      rows++;
    }
    if (rows > 0) await native.sweepSample(fds.subarray(0, rows), cookies.subarray(0, rows), out.subarray(0, rows * SL));
    this.sweeps++;
    for (const group of this.groupList) {
      group.statusCounts.fill(0);
      group.retransNow = 0;
      group.lostNow = 0;
      group.silentNow = 0;
    }
    const CHANGED = native.sweepChanged;
    slice = performance.now();
    for (let k = 0; k < rows; k++) {
      if (k % BLOCK === 0 && k > 0 && performance.now() - slice > SLICE_MS) {
        await yieldToLoop();
        slice = performance.now();
      }
      const s = slots[k]!;
      // The slot may have been closed (its final figures taken) or reused
      // for another connection while the sweep ran.
      if (this.cookie32[2 * s] !== c32[2 * k] || this.cookie32[2 * s + 1] !== c32[2 * k + 1]) continue;
      const rc = out[k * SL]!;
      if (rc !== 0) {
        if (rc === CHANGED) this.dropped++;
        continue;
      }
      this.apply(s, out, k * SL, true);
    }
  }
}
