/**
 * Many connections probed off the main thread: the asynchronous sweep.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { codedError, type SockstateError, systemError } from '../errors';
import { flagsState } from './flags';
import { kernel } from './kernel';
import { native, unsupported } from './native';
import { checkTargets, failure, type ProbeFailure, type ProbeManyEntry, probeNow, stillHolds } from './probe-many';
import type { ConnectionState } from './state';
import { lastHandle, type Target, targetFd } from './target';

/**
 * How many targets are handled per turn of the event loop on the main
 * thread (reading fds and cookies, then building result objects), so that
 * a sweep of tens of thousands of sockets never holds the loop for long.
 */
export const SWEEP_CHUNK = 2048;

function fdChanged(index: number): ProbeFailure {
  return failure(
    codedError(
      'ERR_SOCKSTATE_FD_CHANGED',
      `probeManyAsync(): targets[${index}] was closed (and its fd possibly reused) before the sweep read it`,
    ),
  );
}

/**
 * {@link probeMany}, with the syscalls made on the libuv thread pool: the
 * same entries, in the same order, without holding the event loop for the
 * length of the sweep. The main thread only reads each target's fd and
 * socket cookie (`SO_COOKIE`), in chunks of {@link SWEEP_CHUNK} per turn of
 * the loop, and builds the result objects the same way.
 *
 * Correct under fd reuse: a socket destroyed while the sweep runs frees its
 * fd number at once, and the next socket opened gets it. The worker
 * re-reads each fd's cookie after probing it and drops the row when the
 * cookie differs, so a result is never another socket's. Such a target is
 * answered from its flags when it is a socket (it is destroyed by then,
 * `status: 'closed'`, `source: 'flags'`, as {@link probeMany} answers a
 * destroyed socket), and for a raw fd number with a {@link ProbeFailure}
 * whose error has code `ERR_SOCKSTATE_FD_CHANGED`.
 *
 * Each entry is the state at some moment during the call, not one instant
 * for all: use {@link probeMany} for a small pool, this for thousands of
 * connections.
 *
 * @param targets - net.Socket, tls.TLSSocket, listening net.Server or fd numbers.
 * @returns A promise of one new entry per target.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` (synchronously) when `targets` is
 *   not an array, RangeError `ERR_OUT_OF_RANGE` when it holds more than
 *   2**24 targets (as {@link probeMany}); the promise rejects with it when an element is not a
 *   target, RangeError `ERR_OUT_OF_RANGE` for a number that cannot be an
 *   fd, `ERR_SOCKSTATE_UNSUPPORTED` for a raw fd without the addon.
 */
export function probeManyAsync(targets: readonly Target[]): Promise<ProbeManyEntry[]> {
  checkTargets(targets);
  return sweepTargets(targets.slice());
}

async function sweepTargets(targets: readonly Target[]): Promise<ProbeManyEntry[]> {
  const n = targets.length;
  const result = new Array<ProbeManyEntry>(n);
  for (let i = 0; i < n; i++) {
    const target = targets[i];
    targetFd(target, `targets[${i}]`);
    if (typeof target === 'number' && (kernel === null || native === null)) {
      throw unsupported(`probeManyAsync() with a raw fd (targets[${i}])`);
    }
  }
  if (kernel === null || native === null) {
    for (let i = 0; i < n; i++) result[i] = flagsState(targets[i] as net.Socket | net.Server);
    return result;
  }
  const SLOTS = native.probeSlots.COUNT;
  const RESULT = native.probeSlots.RESULT;
  const SYSCALL = native.probeSlots.SYSCALL;
  const CHANGED = native.sweepChanged;
  const syscalls = native.probeSyscalls;
  // Row k of the sweep probes targets[index[k]].
  const fds = new Int32Array(n);
  const cookies = new BigUint64Array(n);
  const index = new Int32Array(n);
  // The handle each socket object's fd was read from; undefined for raw fds.
  const handles = new Array<unknown>(n);
  const chunkFds = new Int32Array(Math.min(n, SWEEP_CHUNK));
  let rows = 0;
  for (let start = 0; start < n; start += SWEEP_CHUNK) {
    if (start > 0) await yieldToLoop();
    const end = Math.min(n, start + SWEEP_CHUNK);
    const first = rows;
    let count = 0;
    // The fd and its cookie are read in this same synchronous turn, so the
    // cookie is the one of the socket the target names now.
    for (let i = start; i < end; i++) {
      const target = targets[i]!;
      const fd = targetFd(target, `targets[${i}]`);
      if (fd < 0) {
        result[i] = flagsState(target as net.Socket | net.Server);
        continue;
      }
      chunkFds[count++] = fd;
      handles[rows] = typeof target === 'number' ? undefined : lastHandle();
      index[rows] = i;
      fds[rows++] = fd;
    }
    native.cookies(chunkFds.subarray(0, count), cookies, first);
    for (let k = first; k < rows; k++) {
      const i = index[k]!;
      const target = targets[i]!;
      // Code run while the chunk's targets were read (a getter on a target)
      // may have closed one read earlier and let another socket take its fd
      // number before the cookies were read: a socket object whose handle
      // no longer holds its fd is answered on its own, in one step. From
      // here on the cookie ties each row to the socket it was read from.
      if (typeof target !== 'number' && !stillHolds(handles[k], fds[k]!)) {
        result[i] = probeNow(target, i, kernel);
        fds[k] = -1;
        continue;
      }
      if (cookies[k] !== 0n) continue;
      // No cookie (closed fd, not a socket): probe it now, as probeMany would.
      let state: ConnectionState | ProbeFailure;
      try {
        state = kernel.state(fds[k]!);
      } catch (err) {
        state = failure(err as SockstateError);
      }
      result[i] = state;
      fds[k] = -1;
    }
  }
  const out = new Int32Array(rows * SLOTS);
  if (rows > 0) await native.sweepProbe(fds.subarray(0, rows), cookies.subarray(0, rows), out);
  for (let k = 0; k < rows; k++) {
    if (k > 0 && k % SWEEP_CHUNK === 0) await yieldToLoop();
    if (fds[k]! < 0) continue;
    const i = index[k]!;
    const base = k * SLOTS;
    const rc = out[base + RESULT]!;
    if (rc === 0) {
      result[i] = kernel.stateAt(out, base);
    } else if (rc === CHANGED) {
      const target = targets[i]!;
      result[i] = typeof target === 'number' ? fdChanged(i) : flagsState(target);
    } else {
      result[i] = failure(systemError(rc, syscalls[out[base + SYSCALL]!] ?? 'getsockopt'));
    }
  }
  return result;
}
