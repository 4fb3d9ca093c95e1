'use strict';
// What a user would write instead of sockstate: pure-JS checks of Node's
// socket flags, the npm package `sockopt` (a getsockopt addon for integer
// options), and libc's getsockopt/poll called through the `koffi` FFI with
// the struct decoded in JavaScript. Constants are Linux's, written out as a
// user of these packages has to.

const IPPROTO_TCP = 6;
const TCP_INFO = 11;
const SOL_SOCKET = 1;
const SO_ERROR = 4;
const POLLIN = 0x1;
const POLLOUT = 0x4;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const POLLRDHUP = 0x2000;
const TCP_STATES = [undefined, 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING'];

/** The pure-JS liveness check code does today: Node's flags only. */
function pureJsAlive(socket) {
  return !socket.destroyed && socket.readyState === 'open' && !socket.readableEnded && socket.writable;
}

function fdOf(socket) {
  const handle = socket._handle;
  if (!handle) throw new Error('socket has no handle');
  return handle.fd;
}

/** `sockopt`'s getsockopt(SOL_SOCKET, SO_ERROR); undefined if not installed. */
function loadSockopt() {
  try {
    const { getsockopt } = require('sockopt');
    return { soError: (socket) => getsockopt(socket, SOL_SOCKET, SO_ERROR), error: null };
  } catch (err) {
    return { soError: undefined, error: err.message };
  }
}

/**
 * A decoder for the 280-byte 6.18 struct written as straight-line code, as a
 * hand-written decoder would be: offsets from the binding's layout (the
 * kernel's), bitfields split from bytes 6 and 7 by hand.
 */
function makeJsDecoder(layout) {
  const entries = Object.entries(layout.fields)
    .filter(([name]) => !['sndWscale', 'rcvWscale', 'deliveryRateAppLimited', 'fastopenClientFail'].includes(name))
    .sort((a, b) => a[1][0] - b[1][0]);
  const lines = entries.map(([name, [offset, size]]) => {
    if (name === 'state') return `state: STATES[b[${offset}]] ?? 'UNKNOWN'`;
    if (size === 1) return `${name}: b[${offset}]`;
    if (size === 2) return `${name}: b.readUInt16LE(${offset})`;
    if (size === 4) return `${name}: b.readUInt32LE(${offset})`;
    return `${name}: b.readBigUInt64LE(${offset})`;
  });
  lines.push('sndWscale: b[6] & 0xf', 'rcvWscale: b[6] >> 4', 'deliveryRateAppLimited: b[7] & 1', 'fastopenClientFail: (b[7] >> 1) & 3');
  return new Function('STATES', `return function decode(b, length) { return { length, ${lines.join(', ')} }; };`)(TCP_STATES);
}

/** getsockopt/poll through koffi; every function is undefined if koffi fails to load. */
function loadKoffi(layout) {
  let koffi;
  try {
    koffi = require('koffi');
  } catch (err) {
    return { error: err.message };
  }
  const libc = koffi.load('libc.so.6');
  const getsockopt = libc.func('int getsockopt(int fd, int level, int name, void *value, void *length)');
  const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');
  const info = Buffer.alloc(layout.size);
  const len = new Uint32Array(1);
  const pfd = Buffer.alloc(8);
  const pfdView = new Int32Array(pfd.buffer, pfd.byteOffset, 2);
  const pfdEvents = new Int16Array(pfd.buffer, pfd.byteOffset, 4);
  const errBox = new Int32Array(1);
  const decode = makeJsDecoder(layout);

  function pollRevents(fd) {
    pfdView[0] = fd;
    pfdEvents[2] = POLLIN | POLLOUT | POLLRDHUP;
    pfdEvents[3] = 0;
    if (poll(pfd, 1, 0) < 0) throw new Error(`poll failed: errno ${koffi.errno()}`);
    return pfdEvents[3];
  }

  /** The full struct, every field decoded in JS. */
  function tcpInfo(socket) {
    const fd = fdOf(socket);
    len[0] = info.length;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, len) !== 0) throw new Error(`getsockopt failed: errno ${koffi.errno()}`);
    return decode(info, len[0]);
  }

  /** The same syscalls as connectionState on an idle socket, and a verdict. */
  function state(socket) {
    const fd = fdOf(socket);
    len[0] = 160;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, len) !== 0) throw new Error(`getsockopt failed: errno ${koffi.errno()}`);
    const tcpState = TCP_STATES[info[0]] ?? 'UNKNOWN';
    const revents = pollRevents(fd);
    return {
      status: tcpState === 'ESTABLISHED' ? 'open' : tcpState === 'CLOSE_WAIT' ? 'peerClosed' : 'other',
      tcpState,
      pendingError: (revents & POLLERR) !== 0,
      readClosed: (revents & POLLRDHUP) !== 0,
      hangup: (revents & POLLHUP) !== 0,
      stalled: info[2] > 0 || info[3] > 0 || info[4] > 0,
    };
  }

  /** One poll: reusable when only POLLOUT is set. */
  function reusable(socket) {
    return pollRevents(fdOf(socket)) === POLLOUT;
  }

  function soError(socket) {
    len[0] = 4;
    if (getsockopt(fdOf(socket), SOL_SOCKET, SO_ERROR, errBox, len) !== 0) throw new Error(`getsockopt failed: errno ${koffi.errno()}`);
    return errBox[0];
  }

  return { tcpInfo, state, reusable, soError, error: null, version: koffi.version };
}

module.exports = { pureJsAlive, loadSockopt, loadKoffi, makeJsDecoder };
