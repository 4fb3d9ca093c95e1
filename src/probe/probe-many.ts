/**
 * Many connections in one native call: a pool sweep.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { invalidArgType, outOfRange, type SockstateError, systemError } from '../errors';
import { flagsState } from './flags';
import { type KernelProbe, kernel, withSocketFlags } from './kernel';
import { native, unsupported } from './native';
import type { ConnectionState } from './state';
import { lastHandle, type Target, targetFd } from './target';

/** A {@link probeMany} entry for a target that was probed (or answered from flags). */
export interface ProbedState extends ConnectionState {
  /** Absent: the probe succeeded. */
  readonly error?: undefined;
}

/**
 * A {@link probeMany} entry for a target whose probe failed: a raw fd that
 * is closed (`EBADF`), not a socket (`ENOTSOCK`) or a datagram socket
 * (`EOPNOTSUPP`). `status` is `'unknown'`, every other field is empty.
 */
export interface ProbeFailure extends ConnectionState {
  readonly status: 'unknown';
  readonly tcpState: null;
  /** The system error {@link connectionState} would have thrown for this target. */
  readonly error: SockstateError;
}

/** One entry of {@link probeMany}'s result: test `entry.error` to tell them apart. */
export type ProbeManyEntry = ProbedState | ProbeFailure;

const SLOTS = native === null ? 0 : native.probeSlots.COUNT;

/** More targets than this is a RangeError: the scratch buffers could not be sized. */
const MAX_TARGETS = 2 ** 24;
/** Scratch buffers up to this many entries are kept for the next sweep; larger ones are released. */
const KEEP_MAX = 16_384;

// Scratch for one call: fds in, probe slots out, and per target whether the
// kernel answers it. The binding probes fds.length entries, so it is given
// views of exactly n; the views are kept while n stays the same, as it does
// for a pool swept again and again.
interface Scratch {
  fds: Int32Array;
  out: Int32Array;
  viaKernel: Uint8Array;
  fdView: Int32Array;
  outView: Int32Array;
}

function newScratch(capacity: number): Scratch {
  const fds = new Int32Array(capacity);
  const out = new Int32Array(capacity * SLOTS);
  return { fds, out, viaKernel: new Uint8Array(capacity), fdView: fds.subarray(0, 0), outView: out.subarray(0, 0) };
}

// Grown one element at a time as targets are checked, so a huge array of
// holes throws at its first element before anything is allocated.
function grow(scratch: Scratch, needed: number): Scratch {
  const next = newScratch(Math.max(needed, scratch.fds.length * 2, 64));
  next.fds.set(scratch.fds);
  next.viaKernel.set(scratch.viaKernel);
  return next;
}

function views(scratch: Scratch, n: number): void {
  if (scratch.fdView.length !== n || scratch.fdView.buffer !== scratch.fds.buffer) {
    scratch.fdView = scratch.fds.subarray(0, n);
    scratch.outView = scratch.out.subarray(0, n * SLOTS);
  }
}

// The scratch kept between sweeps, and whether a sweep is using it: a
// getter on a target may call probeMany again, and that call must not
// write into the outer one's buffers.
let kept: Scratch = newScratch(0);
let inUse = false;

/** Checks the `targets` argument of probeMany() and probeManyAsync(): an array of at most 2**24. */
export function checkTargets(targets: unknown): asserts targets is readonly Target[] {
  if (!Array.isArray(targets)) throw invalidArgType('targets', 'an instance of Array', targets);
  if (targets.length > MAX_TARGETS) throw outOfRange('targets.length', `<= ${MAX_TARGETS}`, targets.length);
}

function unsupportedRawFd(index: number): SockstateError {
  return unsupported(`probeMany() with a raw fd (targets[${index}])`);
}

// Whether `handle` still holds `fd`. A libuv handle keeps its fd from open
// to close and never gets one back once closed (its fd then reads
// negative), so a handle that holds `fd` after the probe held it, without a
// gap, since it was read: the probe saw that handle's socket.
export function stillHolds(handle: unknown, fd: number): boolean {
  return typeof handle === 'object' && handle !== null && (handle as { fd?: unknown }).fd === fd;
}

// The connectionState() answer for one target, its fd read and probed in
// one step, as an entry: for a target whose socket changed during the sweep.
export function probeNow(target: net.Socket | net.Server, index: number, probe: KernelProbe): ProbeManyEntry {
  const fd = targetFd(target, `targets[${index}]`);
  if (fd < 0) return flagsState(target);
  try {
    return withSocketFlags(target, probe.state(fd));
  } catch (err) {
    // KernelProbe.state() throws only the system error of a failed probe.
    return failure(err as SockstateError);
  }
}

/** The entry for a target whose probe failed with `error`. */
export function failure(error: SockstateError): ProbeFailure {
  return {
    status: 'unknown',
    tcpState: null,
    pendingError: false,
    readClosed: false,
    unreadBytes: 0,
    unsentBytes: 0,
    unackedBytes: 0,
    stalled: false,
    source: 'kernel',
    error,
  };
}

/**
 * Probes many connections with one native call, as a pool sweep does: the
 * same non-destructive answer as {@link connectionState} for each target,
 * in order. A target without an fd (destroyed, still connecting) gets the
 * flags answer, as connectionState gives it. A failing fd (a closed raw fd
 * number, a non-socket, a UDP socket) yields its own {@link ProbeFailure}
 * entry (`status: 'unknown'` with `error`) and never fails the others.
 *
 * An entry never describes another socket than the one its target named.
 * Code run while the targets are read (a getter on the array or on a
 * target, a Proxy) may close a target read earlier, and a new socket may
 * then take its fd number before the one native call. So each socket
 * object's handle is checked after that call: if it no longer holds the fd
 * it gave, the target is answered on its own, its fd read and probed in one
 * step (the flags answer once it has no fd). A raw fd number names
 * whichever socket holds it when probed.
 *
 * Without the addon, every socket is answered from its flags.
 *
 * @param targets - net.Socket, tls.TLSSocket, listening net.Server or fd numbers.
 * @returns One new entry per target.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` when `targets` is not an array or
 *   an element is not a target (the message names it, e.g. `targets[3]`).
 * @throws RangeError `ERR_OUT_OF_RANGE` for a number (or a handle's fd)
 *   that cannot be an fd, and for more than 2**24 targets.
 * @throws SockstateError `ERR_SOCKSTATE_UNSUPPORTED` for a raw fd without
 *   the addon.
 */
export function probeMany(targets: readonly Target[]): ProbeManyEntry[] {
  checkTargets(targets);
  const n = targets.length;
  if (kernel === null || native === null) {
    const result = new Array<ProbeManyEntry>(n);
    for (let i = 0; i < n; i++) {
      const target = targets[i];
      targetFd(target, `targets[${i}]`);
      if (typeof target === 'number') throw unsupportedRawFd(i);
      result[i] = flagsState(target as net.Socket | net.Server);
    }
    return result;
  }
  // Holds each kernel-probed target until its answer replaces it.
  const result = new Array<ProbeManyEntry | Target>(n);
  // The handle each kernel-probed socket object held when its fd was read;
  // undefined for raw fds.
  const handles = new Array<unknown>(n);
  const nested = inUse;
  let scratch = nested ? newScratch(0) : kept;
  inUse = true;
  try {
    // Each target is read once: its fd for the kernel, or its flags answer
    // now (a getter may not return the same object twice).
    let kernelCount = 0;
    for (let i = 0; i < n; i++) {
      const target = targets[i];
      const fd = targetFd(target, `targets[${i}]`);
      if (i >= scratch.fds.length) scratch = grow(scratch, i + 1);
      if (fd >= 0) {
        scratch.fds[i] = fd;
        scratch.viaKernel[i] = 1;
        result[i] = target!;
        if (typeof target !== 'number') handles[i] = lastHandle();
        kernelCount++;
      } else {
        if (typeof target === 'number') throw unsupportedRawFd(i);
        // The binding answers -EBADF for a negative fd without a syscall.
        scratch.fds[i] = -1;
        scratch.viaKernel[i] = 0;
        result[i] = flagsState(target as net.Socket | net.Server);
      }
    }
    if (kernelCount === 0) return result as ProbeManyEntry[];
    views(scratch, n);
    native.probeMany(scratch.fdView, scratch.outView);
    const out = scratch.out;
    const syscalls = native.probeSyscalls;
    const RESULT = native.probeSlots.RESULT;
    const SYSCALL = native.probeSlots.SYSCALL;
    for (let i = 0; i < n; i++) {
      if (scratch.viaKernel[i] === 0) continue;
      const target = result[i] as Target;
      // Checked here, after the probe and after any code run by the checks
      // and answers before it: still holding the fd now proves it was held
      // at the probe. Code run later cannot change an entry already made.
      if (typeof target !== 'number' && !stillHolds(handles[i], scratch.fds[i]!)) {
        result[i] = probeNow(target, i, kernel);
        continue;
      }
      const base = i * SLOTS;
      const rc = out[base + RESULT]!;
      result[i] =
        rc === 0
          ? withSocketFlags(target, kernel.stateAt(out, base))
          : failure(systemError(rc, syscalls[out[base + SYSCALL]!] ?? 'getsockopt'));
    }
    return result as ProbeManyEntry[];
  } finally {
    if (!nested) {
      inUse = false;
      // A one-off huge sweep does not pin its buffers for the process's life.
      kept = scratch.fds.length <= KEEP_MAX ? scratch : newScratch(0);
    }
  }
}
