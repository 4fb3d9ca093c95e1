/**
 * Many connections in one native call: a pool sweep.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { invalidArgType, type SockstateError, systemError } from './errors';
import { flagsState } from './flags';
import { kernel } from './kernel';
import { native, unsupported } from './native';
import type { ConnectionState } from './state';
import { type Target, targetFd } from './target';

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

// Scratch buffers shared by every call, grown (doubling) as needed. The
// binding probes fds.length entries, so it is given views of exactly n;
// the views are kept while n stays the same, as it does for a pool swept
// again and again.
let fdBuf = new Int32Array(0);
let outBuf = new Int32Array(0);
let fdView = fdBuf;
let outView = outBuf;
// Per target: 1 probed through fdBuf, 0 answered from flags.
let viaKernel = new Uint8Array(0);

function reserve(n: number): void {
  if (n > fdBuf.length) {
    const capacity = Math.max(n, fdBuf.length * 2, 64);
    fdBuf = new Int32Array(capacity);
    outBuf = new Int32Array(capacity * SLOTS);
    viaKernel = new Uint8Array(capacity);
    fdView = fdBuf.subarray(0, 0);
    outView = outBuf.subarray(0, 0);
  }
  if (fdView.length !== n) {
    fdView = fdBuf.subarray(0, n);
    outView = outBuf.subarray(0, n * SLOTS);
  }
}

function checkTargets(targets: unknown): asserts targets is readonly Target[] {
  if (!Array.isArray(targets)) throw invalidArgType('targets', 'an instance of Array', targets);
}

function unsupportedRawFd(index: number): SockstateError {
  return unsupported(`probeMany() with a raw fd (targets[${index}])`);
}

// Reads every target's fd into fdBuf (validating each, so a bad element
// throws before any syscall). Returns how many need the kernel.
function collect(targets: readonly Target[], n: number): number {
  let kernelCount = 0;
  for (let i = 0; i < n; i++) {
    const target = targets[i];
    const fd = targetFd(target, `targets[${i}]`);
    if (fd >= 0 && kernel !== null) {
      fdBuf[i] = fd;
      viaKernel[i] = 1;
      kernelCount++;
    } else {
      if (typeof target === 'number') throw unsupportedRawFd(i);
      // The binding answers -EBADF for a negative fd without a syscall.
      fdBuf[i] = -1;
      viaKernel[i] = 0;
    }
  }
  return kernelCount;
}

function failure(error: SockstateError): ProbeFailure {
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
 * Without the addon, every socket is answered from its flags.
 *
 * @param targets - net.Socket, tls.TLSSocket, listening net.Server or fd numbers.
 * @returns One new entry per target.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` when `targets` is not an array or
 *   an element is not a target (the message names it, e.g. `targets[3]`).
 * @throws RangeError `ERR_OUT_OF_RANGE` for a number that cannot be an fd.
 * @throws SockstateError `ERR_SOCKSTATE_UNSUPPORTED` for a raw fd without
 *   the addon.
 */
export function probeMany(targets: readonly Target[]): ProbeManyEntry[] {
  checkTargets(targets);
  const n = targets.length;
  const result = new Array<ProbeManyEntry>(n);
  if (kernel === null || native === null) {
    for (let i = 0; i < n; i++) {
      const target = targets[i];
      targetFd(target, `targets[${i}]`);
      if (typeof target === 'number') throw unsupportedRawFd(i);
    }
    for (let i = 0; i < n; i++) result[i] = flagsState(targets[i] as net.Socket | net.Server);
    return result;
  }
  reserve(n);
  if (collect(targets, n) > 0) native.probeMany(fdView, outView);
  const syscalls = native.probeSyscalls;
  const RESULT = native.probeSlots.RESULT;
  const SYSCALL = native.probeSlots.SYSCALL;
  for (let i = 0; i < n; i++) {
    if (viaKernel[i] === 0) {
      result[i] = flagsState(targets[i] as net.Socket | net.Server);
      continue;
    }
    const base = i * SLOTS;
    const rc = outBuf[base + RESULT]!;
    result[i] =
      rc === 0
        ? kernel.stateAt(outBuf, base)
        : failure(systemError(rc, syscalls[outBuf[base + SYSCALL]!] ?? 'getsockopt'));
  }
  return result;
}
