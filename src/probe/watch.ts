/**
 * Watching one connection over time: periodic, non-destructive samples.
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { invalidArgType, outOfRange } from '../errors';
import { flagsState } from './flags';
import { kernel, stateOfFd } from './kernel';
import type { ConnectionState } from './state';
import { NO_HANDLE, type Target, targetFd } from './target';
import type { TcpInfo } from './tcp-info';

/** Options for {@link watch}. */
export interface WatchOptions {
  /**
   * Time between samples, in ms: an integer, 1 … 2147483647. Default 1000.
   * Read only from the object itself, never from its prototype chain.
   */
  readonly intervalMs?: number;
}

/**
 * Why a watcher ended:
 * - `closed`: the socket or server closed (its `'close'` event, or it was
 *   found destroyed; a server found without its listening handle: closed,
 *   or not listening when watched); for a raw fd, the kernel reported a finished
 *   connection (`closed`, `reset` or `errored`), after which the number
 *   may be reused.
 * - `stopped`: {@link ConnectionWatcher.stop} was called.
 * - `error`: a probe failed (for a raw fd, typically `EBADF`: it was closed).
 */
export type WatchEndReason = 'closed' | 'stopped' | 'error';

/** The payload of a watcher's `'end'` event. */
export interface WatchEnd {
  /** Why it ended. */
  readonly reason: WatchEndReason;
  /** The last state observed (for `closed` on a socket: the closed state from its flags). */
  readonly state: ConnectionState;
  /** The probe error, for reason `error`. */
  readonly error?: Error;
}

/** Events of a {@link ConnectionWatcher} and their arguments. */
export interface ConnectionWatcherEvents {
  /**
   * The connection changed in `status`, `tcpState`, `pendingError`,
   * `readClosed`, `stalled` or `source` (byte counts alone do not count as
   * a change; they are in every state and sample).
   */
  change: [previous: ConnectionState, current: ConnectionState];
  /**
   * Every interval, after any `'change'`: the kernel's tcp_info and the
   * state. Only for TCP sockets with the addon, and only while a `'sample'`
   * listener is attached (tcp_info is not read otherwise).
   */
  sample: [info: TcpInfo, state: ConnectionState];
  /** A probe failed. Emitted only when it has a listener; `'end'` always follows, carrying the error. */
  error: [error: Error];
  /** The watcher stopped; nothing is emitted after this. */
  end: [end: WatchEnd];
}

const DEFAULT_INTERVAL_MS = 1000;
const MAX_INTERVAL_MS = 0x7fffffff;


function sameVerdict(a: ConnectionState, b: ConnectionState): boolean {
  return (
    a.status === b.status &&
    a.tcpState === b.tcpState &&
    a.pendingError === b.pendingError &&
    a.readClosed === b.readClosed &&
    a.stalled === b.stalled &&
    a.source === b.source
  );
}

function isFinished(state: ConnectionState): boolean {
  return state.status === 'closed' || state.status === 'reset' || state.status === 'errored';
}

// One probe, as connectionState() gives it. Throws a SockstateError.
function probe(target: Target): { state: ConnectionState; fd: number } {
  const fd = targetFd(target, 'target');
  return { state: stateOfFd(target, fd, 'watch()'), fd };
}

type Watched = net.Socket | net.Server;

// The watchers of each socket or server, behind ONE 'close' listener per
// target however many watch it (a listener each would trip Node's
// MaxListenersExceededWarning at eleven).
const watchersOf = new WeakMap<Watched, Set<ConnectionWatcher>>();

function onTargetClose(this: Watched): void {
  const watchers = watchersOf.get(this);
  if (watchers === undefined) return;
  for (const watcher of [...watchers]) watcher['finish']('closed', flagsState(this));
}

function attach(target: Watched, watcher: ConnectionWatcher): void {
  let watchers = watchersOf.get(target);
  if (watchers === undefined) {
    watchers = new Set();
    watchersOf.set(target, watchers);
    target.on('close', onTargetClose);
  }
  watchers.add(watcher);
}

function detach(target: Watched, watcher: ConnectionWatcher): void {
  const watchers = watchersOf.get(target);
  if (watchers === undefined || !watchers.delete(watcher) || watchers.size > 0) return;
  watchersOf.delete(target);
  target.removeListener('close', onTargetClose);
}

// Gone for good: a destroyed socket without a handle, or a server without
// one (closed, or never listening). A closed server emits 'close' only
// once its last connection ends, so its missing handle is what says it.
function isGone(target: Target, fd: number): boolean {
  if (fd !== NO_HANDLE) return false;
  if (target instanceof net.Server) return true;
  return target instanceof net.Socket && target.destroyed;
}

/**
 * Samples one connection at an interval; created by {@link watch}. Its
 * timer is unref'd, so it never keeps the process alive, and it ends by
 * itself when the socket closes.
 */
export class ConnectionWatcher extends EventEmitter<ConnectionWatcherEvents> {
  private readonly target: Target;
  private readonly timer: NodeJS.Timeout;
  private current: ConnectionState;
  private ended = false;

  /** @internal Use {@link watch}. */
  constructor(target: Target, intervalMs: number, initial: ConnectionState, fd: number) {
    super();
    this.target = target;
    this.current = initial;
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
    if (typeof target !== 'number') {
      attach(target, this);
      // Already gone: end once the caller has had a chance to listen.
      if (isGone(target, fd)) process.nextTick(() => this.finish('closed', flagsState(target)));
    }
  }

  /** The most recent state observed. */
  get state(): ConnectionState {
    return this.current;
  }

  /** False once `'end'` has been emitted. */
  get active(): boolean {
    return !this.ended;
  }

  /** Stops sampling and emits `'end'` with reason `stopped` (no-op once ended). */
  stop(): void {
    this.finish('stopped', this.current);
  }

  private tick(): void {
    if (this.ended) return;
    const target = this.target;
    let fd: number;
    let state: ConnectionState;
    try {
      ({ state, fd } = probe(target));
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    const previous = this.current;
    this.current = state;
    if (!sameVerdict(previous, state)) this.emit('change', previous, state);
    if (this.ended) return;
    if (isGone(target, fd)) {
      // Destroyed or closed without 'close' yet (it follows later, for a
      // server only once its connections have ended).
      this.finish('closed', state);
      return;
    }
    if (fd >= 0 && kernel !== null && state.tcpState !== null && this.listenerCount('sample') > 0) {
      let info: TcpInfo;
      try {
        info = kernel.tcpInfo(fd);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      this.emit('sample', info, state);
      if (this.ended) return;
    }
    if (typeof target === 'number' && isFinished(state)) this.finish('closed', state);
  }

  private fail(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    this.finish('error', this.current, error);
  }

  private finish(reason: WatchEndReason, state: ConnectionState, error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.timer);
    if (typeof this.target !== 'number') detach(this.target, this);
    const previous = this.current;
    this.current = state;
    if (!sameVerdict(previous, state)) this.emit('change', previous, state);
    this.emit('end', error === undefined ? { reason, state } : { reason, state, error });
  }
}

/**
 * Watches a connection: every `intervalMs` it takes the same
 * non-destructive snapshot as {@link connectionState} and emits `'change'`
 * when the verdict changed and `'sample'` with the kernel's tcp_info, until
 * the socket closes, {@link ConnectionWatcher.stop} is called, or a probe
 * fails; then `'end'` says why. The first snapshot is taken now
 * (`watcher.state`); the first event comes after one interval. A socket
 * already destroyed, or a server that is not listening (closed, or not
 * yet bound: watch it from its `'listening'` event), ends at once with
 * `closed`. However many watchers a socket has, it carries one `'close'`
 * listener for all of them.
 *
 * The timer is unref'd. Probe errors never throw from the timer: they end
 * the watcher (`'end'` with reason `error`), and are emitted as `'error'`
 * first when someone listens for it.
 *
 * Prefer the socket object to a raw fd: a watcher on a raw fd ends when the
 * kernel reports the connection finished, but cannot see its owner close
 * the fd and the number being reused.
 *
 * @param target - A net.Socket, tls.TLSSocket, listening net.Server, or fd.
 * @param options - See {@link WatchOptions}.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` for a bad target or option type.
 * @throws RangeError `ERR_OUT_OF_RANGE` for a bad fd number or `intervalMs`.
 * @throws SockstateError as {@link connectionState} for the first snapshot
 *   (`EBADF`, `ENOTSOCK`, `EOPNOTSUPP`; `ERR_SOCKSTATE_UNSUPPORTED` for a
 *   raw fd without the addon).
 */
export function watch(target: Target, options: WatchOptions = {}): ConnectionWatcher {
  targetFd(target, 'target');
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options);
  // Only what the caller set on the object itself: never a value inherited
  // from Object.prototype.
  const own = Object.hasOwn(options, 'intervalMs') ? options.intervalMs : undefined;
  const intervalMs = own === undefined ? DEFAULT_INTERVAL_MS : own;
  if (typeof intervalMs !== 'number') throw invalidArgType('options.intervalMs', 'of type number', intervalMs);
  if (!Number.isInteger(intervalMs) || intervalMs < 1 || intervalMs > MAX_INTERVAL_MS) {
    throw outOfRange('options.intervalMs', `an integer >= 1 and <= ${MAX_INTERVAL_MS}`, intervalMs);
  }
  const { state, fd } = probe(target);
  return new ConnectionWatcher(target, intervalMs, state, fd);
}
