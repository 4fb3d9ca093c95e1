import * as net from 'node:net';
import { codedError, invalidArgType, invalidArgValue, outOfRange, type SockstateError } from '../errors';

/**
 * What the functions accept: a `net.Socket` (a `tls.TLSSocket` is one), a
 * listening `net.Server`, or a raw file descriptor number.
 */
export type Target = net.Socket | net.Server | number;

/** targetFd(): the object has no handle (destroyed, closed, never connected). */
export const NO_HANDLE = -1;
/** targetFd(): the handle has no kernel fd (connect not yet issued, or a JS stream). */
export const NO_FD = -2;

const FD_MAX = 0x7fffffff;
const TARGET_TYPES = 'an instance of net.Socket, tls.TLSSocket or net.Server, or a file descriptor number';

// The handle the last targetFd() call read from a socket object.
let handleRead: unknown = null;

/**
 * The handle object the latest {@link targetFd} call on a socket object
 * read its fd from (null or undefined when it had none): for callers that
 * must later tell whether that same handle still holds the fd, without
 * reading `_handle` again (a getter there may run code).
 */
export function lastHandle(): unknown {
  return handleRead;
}

/**
 * With {@link tcpSocketFd} and {@link tcpBytesRead}, the only place that reads `_handle`: called at the start of every public
 * call, so the fd is never kept between calls (fds are reused at once after
 * `destroy()`). Returns the fd, or {@link NO_HANDLE} / {@link NO_FD}.
 *
 * @throws TypeError `ERR_INVALID_ARG_TYPE` for anything but a Target;
 *   `ERR_INVALID_ARG_VALUE` for a net.Socket that was never constructed.
 * @throws RangeError `ERR_OUT_OF_RANGE` for a number, or a handle's fd,
 *   that is not an fd.
 */
export function targetFd(target: unknown, name: string): number {
  if (typeof target === 'number') {
    if (Number.isInteger(target) && target >= 0 && target <= FD_MAX) return target;
    throw outOfRange(name, `an integer >= 0 and <= ${FD_MAX}`, target);
  }
  if (target instanceof net.Socket || target instanceof net.Server) {
    // Object.create(net.Socket.prototype) passes instanceof but has no
    // stream state for the flags to read.
    if (target instanceof net.Socket) {
      const state = (target as unknown as { _readableState?: unknown })._readableState;
      if (typeof state !== 'object' || state === null) {
        throw invalidArgValue(name, 'must be a constructed net.Socket (this one has no stream state)');
      }
    }
    const handle = (target as unknown as { _handle?: { fd?: unknown } | null })._handle;
    handleRead = handle;
    if (handle === null || handle === undefined) return NO_HANDLE;
    const fd = handle.fd;
    if (typeof fd !== 'number' || !(fd >= 0)) return NO_FD;
    // The same rule as for a number: never truncate 20.5 or 2**32+20 into fd 20.
    if (!Number.isInteger(fd) || fd > FD_MAX) throw outOfRange(`${name}._handle.fd`, `an integer >= 0 and <= ${FD_MAX}`, fd);
    return fd;
  }
  throw invalidArgType(name, TARGET_TYPES, target);
}

const kTcpHandle = Symbol('sockstate.tcpHandle');
type Handle = { fd?: unknown; constructor: { name: string }; _parent?: { constructor: { name: string } }; [kTcpHandle]?: boolean };

// Whether a handle is TCP, or TLS over TCP: poll(2) says POLLOUT for a
// FIFO, a pipe or a terminal too, so only these can be answered by poll
// alone. Node picks the handle's class from the fd's kind. Kept on the
// handle, which never changes kind (a new connection gets a new handle).
function isTcpHandle(handle: Handle): boolean {
  let tcp = handle[kTcpHandle];
  if (tcp === undefined) {
    const name = handle.constructor.name;
    tcp = name === 'TCP' || (name === 'TLSWrap' && handle._parent?.constructor.name === 'TCP');
    handle[kTcpHandle] = tcp;
  }
  return tcp;
}

/**
 * The fd of a connected `net.Socket` whose handle is TCP (or TLS over TCP),
 * read from its handle in this call, or -1 for anything else (no handle,
 * no fd yet, another kind of handle, a socket never constructed): the
 * callers' fast path, which falls back to {@link targetFd} for the rest.
 * Never throws.
 */
export function tcpSocketFd(socket: net.Socket): number {
  const handle = (socket as unknown as { _handle?: Handle | null })._handle;
  if (handle === null || handle === undefined) return -1;
  const fd = handle.fd;
  if (typeof fd !== 'number' || !(fd >= 0) || fd > FD_MAX || !Number.isInteger(fd)) return -1;
  return isTcpHandle(handle) ? fd : -1;
}

/**
 * The bytes Node has read from the socket's TCP connection (its TCP
 * handle's count, under TLS the encrypted bytes, not the decrypted ones
 * `socket.bytesRead` counts), or NaN when the socket has no TCP handle.
 * Never throws.
 */
export function tcpBytesRead(socket: net.Socket): number {
  const handle = (socket as unknown as { _handle?: (Handle & { bytesRead?: unknown; _parent?: { bytesRead?: unknown } }) | null })._handle;
  if (handle === null || handle === undefined || !isTcpHandle(handle)) return Number.NaN;
  const count = handle.constructor.name === 'TCP' ? handle.bytesRead : handle._parent?.bytesRead;
  return typeof count === 'number' ? count : Number.NaN;
}

/** `ERR_SOCKSTATE_NO_FD` for a socket object without an fd, saying why. */
export function noFd(what: string, target: net.Socket | net.Server, sentinel: number): SockstateError {
  return codedError('ERR_SOCKSTATE_NO_FD', `${what}: ${missingFdReason(target, sentinel)}`);
}

/** Why a socket object has no fd, for error messages. */
export function missingFdReason(target: net.Socket | net.Server, sentinel: number): string {
  if (target instanceof net.Server) {
    // A cluster worker's server under round-robin scheduling listens
    // through the primary, which holds the only listening socket.
    return target.listening
      ? 'the server listens through another process (a cluster worker under round-robin scheduling): the listening socket is not in this process'
      : 'the server is not listening';
  }
  if (target.destroyed) return 'the socket is destroyed';
  if (target.connecting) return 'the socket is still connecting';
  if (sentinel === NO_FD) return 'the socket has no file descriptor (a TLS socket over a JS stream, or not yet open)';
  return 'the socket is not connected';
}
