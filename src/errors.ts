import { getSystemErrorName, inspect } from 'node:util';

// Every name Node 20-26 (libuv) gives a Linux errno, ENOTSUP excepted: on
// sockets the kernel means EOPNOTSUPP by that number (see systemError).
const SYSTEM_ERROR_CODES = [
  'E2BIG', 'EACCES', 'EADDRINUSE', 'EADDRNOTAVAIL', 'EAFNOSUPPORT', 'EAGAIN', 'EALREADY', 'EBADF', 'EBUSY',
  'ECANCELED', 'ECONNABORTED', 'ECONNREFUSED', 'ECONNRESET', 'EDESTADDRREQ', 'EEXIST', 'EFAULT', 'EFBIG',
  'EHOSTDOWN', 'EHOSTUNREACH', 'EILSEQ', 'EINTR', 'EINVAL', 'EIO', 'EISCONN', 'EISDIR', 'ELOOP', 'EMFILE',
  'EMLINK', 'EMSGSIZE', 'ENAMETOOLONG', 'ENETDOWN', 'ENETUNREACH', 'ENFILE', 'ENOBUFS', 'ENODATA', 'ENODEV',
  'ENOENT', 'ENOEXEC', 'ENOMEM', 'ENONET', 'ENOPROTOOPT', 'ENOSPC', 'ENOSYS', 'ENOTCONN', 'ENOTDIR',
  'ENOTEMPTY', 'ENOTSOCK', 'ENOTTY', 'ENXIO', 'EOPNOTSUPP', 'EOVERFLOW', 'EPERM', 'EPIPE', 'EPROTO',
  'EPROTONOSUPPORT', 'EPROTOTYPE', 'ERANGE', 'EREMOTEIO', 'EROFS', 'ESHUTDOWN', 'ESOCKTNOSUPPORT', 'ESPIPE',
  'ESRCH', 'ETIMEDOUT', 'ETXTBSY', 'EUNATCH', 'EXDEV', 'UNKNOWN',
] as const;
const systemErrorCodes: ReadonlySet<string> = new Set(SYSTEM_ERROR_CODES);

/**
 * The `code` of a system error: the errno name Node gives it
 * (`util.getSystemErrorName`), with ENOTSUP reported as `EOPNOTSUPP`, and
 * `'UNKNOWN'` for an errno Node has no name for (its number is on `errno`).
 */
export type SystemErrorCode = (typeof SYSTEM_ERROR_CODES)[number];

/**
 * Every `code` a {@link SockstateError} carries: the errno name of a failed
 * system call or a pending socket error ({@link SystemErrorCode}), or one of
 * the `ERR_SOCKSTATE_*` codes sockstate defines itself.
 */
export type SockstateErrorCode =
  /** A failed system call or a pending socket error: the errno name, such as `'ECONNRESET'`; `errno` and `syscall` are set. */
  | SystemErrorCode
  /** The call needs the native addon, which is not available here. */
  | 'ERR_SOCKSTATE_UNSUPPORTED'
  /** The target has no file descriptor (destroyed, not yet connected, or TLS over a JS stream). */
  | 'ERR_SOCKSTATE_NO_FD'
  /** takeSocketError() on a socket that is still connecting. */
  | 'ERR_SOCKSTATE_CONNECTING'
  /** takeSocketError() on a closed connection whose received bytes are still unread (in the kernel or Node's buffer). */
  | 'ERR_SOCKSTATE_UNREAD_DATA'
  /** takeSocketError() on a socket whose owner could not be handed the error (a Proxy, such as an HTTP/2 session's socket). */
  | 'ERR_SOCKSTATE_CANNOT_HAND_BACK'
  /** The kernel filled less of struct tcp_info than any supported kernel does. */
  | 'ERR_SOCKSTATE_SHORT_TCP_INFO'
  /** An integration's optional peer dependency (undici, prom-client, …) is not installed. */
  | 'ERR_SOCKSTATE_PEER_MISSING'
  /** `fetch()` or undici was given sockstate's node:http `Agent` / `HttpsAgent` as a dispatcher: use the `Agent` of `sockstate/undici`. */
  | 'ERR_SOCKSTATE_NOT_A_DISPATCHER'
  /** An integration's peer is installed, but in a version whose internals the guard cannot find (an undici Client without the socket or size it reads). */
  | 'ERR_SOCKSTATE_PEER_UNSUPPORTED'
  /** A pool guard removed a connection that could not be reused; `reason` says why (the error its pool's 'release' event carries). */
  | 'ERR_SOCKSTATE_EVICTED'
  /** A pool validator was given a connection whose socket it cannot find (pg-native, a custom stream, an unknown object). */
  | 'ERR_SOCKSTATE_NO_SOCKET'
  /** An asynchronous sweep found the fd closed (and maybe reused) before it was read: the target's figures are dropped, never another socket's reported. */
  | 'ERR_SOCKSTATE_FD_CHANGED'
  /** A metrics tracker was given more distinct scopes than its `maxScopes`. */
  | 'ERR_SOCKSTATE_TOO_MANY_SCOPES'
  /** A metrics tracker was used after its stop(). */
  | 'ERR_SOCKSTATE_TRACKER_STOPPED';

/**
 * The error class for everything sockstate reports besides argument type
 * errors. Like Node's system errors it carries `code`, and for failed
 * syscalls `errno` (negative, as in Node) and `syscall`, with the message
 * `` `${syscall} ${code}` ``.
 */
export class SockstateError extends Error {
  /** An errno name (`'ECONNRESET'`, `'EBADF'`, …) or an `ERR_SOCKSTATE_*` code: see {@link SockstateErrorCode}. */
  readonly code: SockstateErrorCode;
  /** Negative errno for system errors, as Node reports it; else undefined. */
  readonly errno: number | undefined;
  /** The failed system call (`'getsockopt'`, `'poll'`, …); else undefined. */
  readonly syscall: string | undefined;

  /**
   * @param message - Human-readable text.
   * @param code - errno name or a sockstate code.
   * @param errno - Negative errno, for system errors.
   * @param syscall - The system call that failed, for system errors.
   */
  constructor(message: string, code: SockstateErrorCode, errno?: number, syscall?: string) {
    super(message);
    this.name = 'SockstateError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

/**
 * A system error from a negative errno: code, errno and syscall set. Linux
 * gives ENOTSUP and EOPNOTSUPP one number and libuv names it ENOTSUP; every
 * call here is a socket call, for which the kernel means EOPNOTSUPP.
 */
export function systemError(negErrno: number, syscall: string, detail?: string): SockstateError {
  const name = getSystemErrorName(negErrno);
  const mapped = name === 'ENOTSUP' ? 'EOPNOTSUPP' : name;
  const code = systemErrorCodes.has(mapped) ? (mapped as SystemErrorCode) : 'UNKNOWN';
  const message = detail === undefined ? `${syscall} ${code}` : `${syscall} ${code} (${detail})`;
  return new SockstateError(message, code, negErrno, syscall);
}

/** A sockstate-specific error without errno. */
export function codedError(code: Exclude<SockstateErrorCode, SystemErrorCode>, message: string): SockstateError {
  return new SockstateError(message, code);
}

function describeReceived(value: unknown): string {
  if (value === null || value === undefined) return ` Received ${String(value)}`;
  if (typeof value === 'function') return ` Received function ${value.name || '<anonymous>'}`;
  if (typeof value === 'object') {
    const ctor = (value as { constructor?: { name?: string } }).constructor;
    return ctor?.name ? ` Received an instance of ${ctor.name}` : ` Received ${inspect(value, { depth: -1 })}`;
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return ` Received type ${typeof value} (${shown})`;
}

/** Node-style `ERR_INVALID_ARG_TYPE`: a TypeError naming the argument. */
export function invalidArgType(name: string, expected: string, value: unknown): TypeError {
  const err = new TypeError(`The "${name}" argument must be ${expected}.${describeReceived(value)}`);
  (err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

/** Node-style `ERR_INVALID_ARG_VALUE`: a TypeError for a value of the right type that is not allowed. */
export function invalidArgValue(name: string, reason: string): TypeError {
  const err = new TypeError(`The argument '${name}' ${reason}.`);
  (err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
  return err;
}

/** Node-style `ERR_OUT_OF_RANGE`: a RangeError naming the argument. */
export function outOfRange(name: string, range: string, value: unknown): RangeError {
  const err = new RangeError(
    `The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value)}`,
  );
  (err as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
  return err;
}
