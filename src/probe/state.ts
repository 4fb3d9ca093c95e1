/**
 * Pure mapping from what the kernel reports to a {@link ConnectionStatus}.
 * No I/O here, so every rule is unit-tested without the addon.
 */

/**
 * The verdict on a connection.
 *
 * - `connecting`: SYN_SENT / SYN_RECV, or a socket whose connect is pending.
 * - `open`: ESTABLISHED.
 * - `peerClosed`: the peer sent its FIN (CLOSE_WAIT); for AF_UNIX, the peer
 *   shut down or closed.
 * - `localClosed`: we sent our FIN (FIN_WAIT1, FIN_WAIT2).
 * - `closing`: both FINs sent, ours not yet acknowledged (LAST_ACK, CLOSING).
 * - `reset`: closed by an RST: ECONNRESET, EPIPE or ECONNREFUSED is pending.
 * - `errored`: closed by a timeout or an ICMP error: ETIMEDOUT and kin pending.
 * - `closed`: no connection and no pending error (clean close, destroyed
 *   socket, never connected).
 * - `listening`: a listening socket.
 * - `unknown`: a state sockstate has no rule for.
 */
export type ConnectionStatus =
  | 'connecting'
  | 'open'
  | 'peerClosed'
  | 'localClosed'
  | 'closing'
  | 'reset'
  | 'errored'
  | 'closed'
  | 'listening'
  | 'unknown';

/** Kernel TCP state names (`tcpi_state`); `UNKNOWN` for a number without a name. */
export type TcpStateName =
  | 'ESTABLISHED'
  | 'SYN_SENT'
  | 'SYN_RECV'
  | 'FIN_WAIT1'
  | 'FIN_WAIT2'
  | 'TIME_WAIT'
  | 'CLOSE'
  | 'CLOSE_WAIT'
  | 'LAST_ACK'
  | 'LISTEN'
  | 'CLOSING'
  | 'UNKNOWN';

/** Where a {@link ConnectionState} came from. */
export type StateSource =
  /** The kernel, through the socket's fd. */
  | 'kernel'
  /** Node's own socket flags (no addon, no fd, or a destroyed socket). */
  | 'flags';

/** A synchronous snapshot of one connection, taken without side effects. */
export interface ConnectionState {
  /** The verdict; see {@link ConnectionStatus}. */
  readonly status: ConnectionStatus;
  /** Kernel TCP state name, or `null` where there is none (no fd, or not TCP). */
  readonly tcpState: TcpStateName | null;
  /**
   * An error is pending that the socket's owner has not read yet (POLLERR).
   * The errno itself is not read: reading it would clear it.
   */
  readonly pendingError: boolean;
  /** The receive side is shut: peer FIN, RST, or a local `SHUT_RD` (POLLRDHUP). */
  readonly readClosed: boolean;
  /** Bytes received and not yet read from the kernel (SIOCINQ). From flags: Node's `readableLength`. */
  readonly unreadBytes: number;
  /** Bytes written and not yet sent (our FIN excluded); 0 for AF_UNIX. From flags: Node's `writableLength`. */
  readonly unsentBytes: number;
  /** Bytes sent and not yet acknowledged (our FIN excluded); 0 for AF_UNIX and from flags. */
  readonly unackedBytes: number;
  /** The kernel is retransmitting, probing a zero window or keepalive, or backing off. */
  readonly stalled: boolean;
  /** Where this answer came from. */
  readonly source: StateSource;
}

/**
 * The status of a TCP socket, from its kernel state and poll(2) bits.
 *
 * `reset` versus `errored` is told without reading SO_ERROR: an RST closes
 * a connection at once, while a timeout closes it only after retransmits,
 * probes or backoff that tcp_info still shows. Limits: an ICMP error that
 * kills a connect before any retransmit reads as `reset`, and an RST that
 * arrives during retransmissions reads as `errored`.
 */
export function tcpStatus(tcpState: TcpStateName, pendingError: boolean, stalled: boolean): ConnectionStatus {
  switch (tcpState) {
    case 'ESTABLISHED':
      return 'open';
    case 'SYN_SENT':
    case 'SYN_RECV':
      return 'connecting';
    case 'CLOSE_WAIT':
      return 'peerClosed';
    case 'FIN_WAIT1':
    case 'FIN_WAIT2':
      return 'localClosed';
    case 'LAST_ACK':
    case 'CLOSING':
      return 'closing';
    case 'CLOSE':
      if (!pendingError) return 'closed';
      return stalled ? 'errored' : 'reset';
    case 'TIME_WAIT':
      return 'closed';
    case 'LISTEN':
      return 'listening';
    default:
      return 'unknown';
  }
}

/**
 * The status of a stream socket without TCP (AF_UNIX), from poll(2) alone.
 * The kernel sets an error on our end when the peer closes with data we
 * never read; a peer's shutdown or close shows as a closed read side.
 */
export function streamStatus(listening: boolean, pendingError: boolean, hangup: boolean, readClosed: boolean): ConnectionStatus {
  if (listening) return 'listening';
  if (pendingError) return 'reset';
  if (readClosed) return 'peerClosed';
  if (hangup) return 'closed';
  return 'open';
}

/** Node's `socket.readyState` values. */
export type ReadyState = 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed';

/**
 * The status pure JavaScript can infer from a socket's flags (`destroyed`,
 * `pending`, `readyState`): what code without the addon sees. It lags the
 * kernel: a peer's FIN or RST shows only once Node's event loop has read it.
 */
export function flagsStatus(destroyed: boolean, pending: boolean, readyState: ReadyState): ConnectionStatus {
  if (destroyed) return 'closed';
  if (readyState === 'opening') return 'connecting';
  // `pending` without `connecting`: never connected (readyState says 'open').
  if (pending) return 'closed';
  switch (readyState) {
    case 'open':
      return 'open';
    case 'writeOnly':
      return 'peerClosed';
    case 'readOnly':
      return 'localClosed';
    default:
      return 'closed';
  }
}

/** The tcp_info fields {@link neverEstablished} reads. */
export interface HandshakeEvidence {
  /** `tcpi_delivered` (Linux 4.18+): 1 once the handshake's SYN or SYN-ACK is acknowledged. */
  readonly delivered: number | undefined;
  /** `tcpi_segs_in` (Linux 4.2+): a refused connect has received one segment, the RST. */
  readonly segsIn: number | undefined;
  /** `tcpi_options`: options negotiated in the handshake (0 when none completed). */
  readonly options: number;
}

/**
 * True when a closed TCP socket never completed its handshake: a connect
 * refused or made unreachable before the peer answered. An accepted
 * connection that never sent data has acknowledged nothing either
 * (`bytesAcked` 0), so the fields that do tell them apart are read, the
 * most telling one the kernel fills: `delivered` (0 vs at least 1), else
 * `segsIn` (at most the RST vs the handshake's segments), else `options`
 * (none negotiated; an established connection with every TCP option
 * turned off by sysctl also reads 0 on such old kernels).
 */
export function neverEstablished(info: HandshakeEvidence): boolean {
  if (info.delivered !== undefined) return info.delivered === 0;
  if (info.segsIn !== undefined) return info.segsIn <= 1;
  return info.options === 0;
}
