import * as net from 'node:net';
import { type ConnectionState, flagsStatus } from './state';

/**
 * A ConnectionState from Node's own flags: what code without the addon can
 * know. Used when the addon is unavailable and for sockets without an fd
 * (destroyed, still connecting, TLS over a JS stream). Byte counts are
 * Node's buffers, not the kernel's.
 */
export function flagsState(target: net.Socket | net.Server): ConnectionState {
  if (target instanceof net.Server) {
    return {
      status: target.listening ? 'listening' : 'closed',
      tcpState: null,
      pendingError: false,
      readClosed: false,
      unreadBytes: 0,
      unsentBytes: 0,
      unackedBytes: 0,
      stalled: false,
      source: 'flags',
    };
  }
  const status = flagsStatus(target.destroyed, target.pending, target.readyState);
  return {
    status,
    tcpState: null,
    pendingError: false,
    readClosed: status === 'peerClosed' || status === 'closed' || target.readableEnded,
    unreadBytes: target.readableLength,
    unsentBytes: target.writableLength,
    unackedBytes: 0,
    stalled: false,
    source: 'flags',
  };
}
