/**
 * Whether a request that died with its connection can be sent again: the
 * kernel's proof that the server never received it.
 *
 * A guard takes the connection's byte counts from `TCP_INFO` right before
 * a request goes out on a reused connection, and again when the socket is
 * destroyed (in `_destroy`, before Node closes the fd). The request is
 * proven undelivered when, between the two:
 *
 * - the peer's FIN arrived: `bytesReceived` grew by exactly one more than
 *   the bytes Node read from the connection and the bytes still unread in
 *   the kernel (a TLS close_notify before the FIN is read by Node's TLS
 *   layer, and counts as read);
 * - nothing the peer sent acknowledged any of the request: `bytesAcked`
 *   did not move (every segment a TCP stack sends after receiving bytes
 *   acknowledges them, its FIN included);
 * - the request was written on that connection and no response to it
 *   began.
 *
 * The server had then closed its socket before its kernel saw a byte of
 * the request, and a closed socket reads nothing more. Acknowledgements
 * alone prove nothing: a server that read the request and reset at once
 * sends no FIN and may not have acknowledged yet. The one gap is a server
 * that half-closes (`shutdown(SHUT_WR)`) and keeps reading.
 *
 * @packageDocumentation
 */
import type * as net from 'node:net';
import { kernel } from '../probe/kernel';
import { native } from '../probe/native';
import { targetFd, tcpBytesRead } from '../probe/target';

/**
 * What a guard knows about one request written on a reused connection.
 * Created by {@link watchRequest}; the final figures are filled in when
 * the socket is destroyed.
 */
export interface RequestWatch {
  /** The connection the request went out on. */
  readonly socket: net.Socket;
  /** `tcpi_bytes_acked` right before the request was written. */
  readonly acked: number;
  /** `tcpi_bytes_received` right before the request was written. */
  readonly received: number;
  /** What Node had read from the TCP connection at the same moment (encrypted bytes under TLS). */
  readonly read: number;
  /** `socket.bytesWritten` at the same moment: more later means the request went out here. */
  readonly written: number;
  /** Set once any part of a response arrived, or the request completed. */
  responded: boolean;
  /** Whether the final figures below were taken. */
  taken: boolean;
  /** `tcpi_bytes_acked` when the socket was destroyed. */
  finalAcked: number;
  /** `tcpi_bytes_received` when the socket was destroyed. */
  finalReceived: number;
  /** Bytes waiting unread in the kernel then (SIOCINQ, the FIN not counted). */
  finalUnread: number;
  /** What Node had read from the TCP connection then. */
  finalRead: number;
  /** Whether Node had handed bytes of this request to the connection by then. */
  wroteHere: boolean;
}

const kWatch = Symbol('sockstate.replay.watch');
const kHooked = Symbol('sockstate.replay.hooked');
type Destroy = (err: Error | null, cb: (err: Error | null) => void) => void;
type Watched = net.Socket & { [kWatch]?: RequestWatch | undefined; [kHooked]?: true; _destroy: Destroy };

const slots = native?.sampleSlots;
// One row for this thread's synchronous reads, as the kernel probe keeps.
const row = new Float64Array(slots?.COUNT ?? 0);
const ESTABLISHED = native === null ? -1 : native.tcpStates.indexOf('ESTABLISHED');

/**
 * Reads the byte counts of `socket` right before a request is written on
 * it and keeps them, with a hook that takes the final counts when the
 * socket is destroyed. Null when the kernel cannot speak for it: no addon,
 * no fd, not TCP (an AF_UNIX socket has no `TCP_INFO`), not established,
 * bytes of an earlier exchange still unacknowledged, or a kernel too old
 * to count bytes. Costs one `getsockopt(TCP_INFO)`.
 *
 * @param socket - A connection about to carry a request.
 */
export function watchRequest(socket: net.Socket): RequestWatch | null {
  if (native === null || slots === undefined) return null;
  const fd = targetFd(socket, 'socket');
  if (fd < 0 || native.sample(fd, row, 0) !== 0) return null;
  if (row[slots.STATE] !== ESTABLISHED || row[slots.UNACKED] !== 0) return null;
  const acked = row[slots.BYTES_ACKED]!;
  const received = row[slots.BYTES_RECEIVED]!;
  if (Number.isNaN(acked) || Number.isNaN(received)) return null;
  const watch: RequestWatch = {
    socket,
    acked,
    received,
    read: tcpBytesRead(socket),
    written: socket.bytesWritten,
    responded: false,
    taken: false,
    finalAcked: Number.NaN,
    finalReceived: Number.NaN,
    finalUnread: Number.NaN,
    finalRead: Number.NaN,
    wroteHere: false,
  };
  const watched = socket as Watched;
  if (watched[kHooked] === undefined) hookDestroy(watched);
  watched[kWatch] = watch;
  return watch;
}

// Node closes the fd in _destroy, after which TCP_INFO is gone: the
// final figures are taken just before. One hook per socket, for its life.
function hookDestroy(socket: Watched): void {
  const original = socket._destroy;
  socket[kHooked] = true;
  socket._destroy = function (this: Watched, err: Error | null, cb: (err: Error | null) => void): void {
    const watch = this[kWatch];
    if (watch !== undefined) {
      this[kWatch] = undefined;
      takeFinal(watch);
    }
    original.call(this, err, cb);
  };
}

// The final figures, while the fd is still open. Never throws: a figure
// that cannot be read leaves the watch unproven.
function takeFinal(watch: RequestWatch): void {
  if (watch.taken || native === null || slots === undefined || kernel === null) return;
  watch.taken = true;
  watch.wroteHere = watch.socket.bytesWritten > watch.written;
  if (watch.responded) return;
  let fd: number;
  try {
    fd = targetFd(watch.socket, 'socket');
  } catch {
    return;
  }
  if (fd < 0 || native.sample(fd, row, 0) !== 0) return;
  const acked = row[slots.BYTES_ACKED]!;
  const received = row[slots.BYTES_RECEIVED]!;
  try {
    watch.finalUnread = kernel.state(fd).unreadBytes;
  } catch {
    return;
  }
  watch.finalAcked = acked;
  watch.finalReceived = received;
  watch.finalRead = tcpBytesRead(watch.socket);
}

/**
 * Marks the watch answered (a response began or the request completed) and
 * detaches it from its socket: nothing it could prove matters any more.
 */
export function releaseWatch(watch: RequestWatch): void {
  watch.responded = true;
  const socket = watch.socket as Watched;
  if (socket[kWatch] === watch) socket[kWatch] = undefined;
}

/**
 * True when the kernel proves the server never received the watched
 * request: see the module's description. Takes the final figures now if
 * the socket was not destroyed yet.
 */
export function provenUndelivered(watch: RequestWatch): boolean {
  if (watch.responded) return false;
  if (!watch.taken) {
    const socket = watch.socket as Watched;
    if (socket[kWatch] === watch) socket[kWatch] = undefined;
    takeFinal(watch);
  }
  return undelivered(watch);
}

/** The figures {@link undelivered} judges. */
export type Figures = Pick<RequestWatch, 'responded' | 'wroteHere' | 'acked' | 'received' | 'read' | 'finalAcked' | 'finalReceived' | 'finalUnread' | 'finalRead'>;

/**
 * The rule itself, on figures taken before the request was written and
 * when its connection died: see the module's description. Any figure that
 * could not be read (NaN) makes it false.
 */
export function undelivered(f: Figures): boolean {
  if (f.responded || !f.wroteHere || f.finalAcked !== f.acked) return false;
  // What arrived beyond what Node read and what waits unread: the FIN, one
  // sequence number, and nothing else.
  return f.finalReceived - f.received - (f.finalRead - f.read) - f.finalUnread === 1;
}

// Errors of requests the kernel proved undelivered. Weak: an error lives
// as long as its holder keeps it.
const replaySafe = new WeakSet<object>();

/**
 * Marks `err` as the error of a request the kernel proved undelivered.
 *
 * @param err - The error about to reach the caller.
 */
export function markReplaySafe(err: unknown): void {
  if (typeof err === 'object' && err !== null) replaySafe.add(err);
}

// How far down `cause` chains to look: fetch wraps the socket error once,
// HTTP client libraries once or twice more.
const MAX_CAUSE_DEPTH = 8;

/**
 * Whether a failed request may be sent again whatever its method: true
 * only when `err` (or an error in its `cause` chain, as `fetch()`'s
 * `TypeError: fetch failed` wraps the socket error) comes from a request
 * that a sockstate guard watched on a reused connection and the kernel
 * showed that the server had closed the connection before it received a
 * byte of the request: the peer's FIN arrived, acknowledging none of the
 * request, and nothing of a response came. Otherwise false: it never
 * guesses, so a request whose fate is unknown (the server may have read
 * it) is false, and so is anything that is not such an error.
 *
 * Works for errors from `sockstate/undici` dispatchers (and `fetch()`
 * through one) and from the {@link Agent} / {@link HttpsAgent} (and so
 * from clients built on them, such as axios or got, whose errors keep the
 * socket error as `cause`).
 *
 * @param err - Any value; a thrown error or a rejection reason.
 * @returns True when sending the request again cannot duplicate it.
 */
export function isReplaySafe(err: unknown): boolean {
  let current: unknown = err;
  try {
    for (let depth = 0; depth < MAX_CAUSE_DEPTH; depth += 1) {
      if (typeof current !== 'object' || current === null) return false;
      if (replaySafe.has(current)) return true;
      current = (current as { cause?: unknown }).cause;
    }
  } catch {
    // A hostile `cause` getter: no verdict, so no.
    return false;
  }
  return false;
}
