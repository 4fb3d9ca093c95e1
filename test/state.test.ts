import { describe, expect, it } from 'vitest';
import { type ConnectionStatus, flagsStatus, type ReadyState, streamStatus, tcpStatus, type TcpStateName } from '../src/probe/state';

describe('tcpStatus: kernel state + poll bits -> status', () => {
  const rows: [TcpStateName, boolean, boolean, ConnectionStatus][] = [
    // tcpState, pendingError, stalled, expected
    ['ESTABLISHED', false, false, 'open'],
    ['ESTABLISHED', true, false, 'open'],
    ['ESTABLISHED', false, true, 'open'],
    ['SYN_SENT', false, false, 'connecting'],
    ['SYN_SENT', false, true, 'connecting'],
    ['SYN_RECV', false, false, 'connecting'],
    ['CLOSE_WAIT', false, false, 'peerClosed'],
    ['FIN_WAIT1', false, false, 'localClosed'],
    ['FIN_WAIT2', false, false, 'localClosed'],
    ['LAST_ACK', false, false, 'closing'],
    ['CLOSING', false, false, 'closing'],
    ['CLOSE', false, false, 'closed'],
    ['CLOSE', false, true, 'closed'],
    ['CLOSE', true, false, 'reset'],
    ['CLOSE', true, true, 'errored'],
    ['TIME_WAIT', false, false, 'closed'],
    ['LISTEN', false, false, 'listening'],
    ['UNKNOWN', false, false, 'unknown'],
  ];
  it.each(rows)('%s pendingError=%s stalled=%s -> %s', (state, pendingError, stalled, expected) => {
    expect(tcpStatus(state, pendingError, stalled)).toBe(expected);
  });
});

describe('streamStatus: AF_UNIX from poll bits', () => {
  const rows: [boolean, boolean, boolean, boolean, ConnectionStatus][] = [
    // listening, pendingError, hangup, readClosed, expected
    [true, false, false, false, 'listening'],
    [false, false, false, false, 'open'],
    [false, false, false, true, 'peerClosed'],
    [false, false, true, true, 'peerClosed'],
    [false, true, true, true, 'reset'],
    [false, false, true, false, 'closed'],
  ];
  it.each(rows)('listening=%s err=%s hup=%s rdhup=%s -> %s', (listening, err, hup, rdhup, expected) => {
    expect(streamStatus(listening, err, hup, rdhup)).toBe(expected);
  });
});

describe('flagsStatus: what pure JS can infer', () => {
  const rows: [boolean, boolean, ReadyState, ConnectionStatus][] = [
    // destroyed, pending, readyState, expected
    [true, false, 'open', 'closed'],
    [true, false, 'closed', 'closed'],
    [false, true, 'opening', 'connecting'],
    [false, true, 'open', 'closed'],
    [false, false, 'open', 'open'],
    [false, false, 'writeOnly', 'peerClosed'],
    [false, false, 'readOnly', 'localClosed'],
    [false, false, 'closed', 'closed'],
  ];
  it.each(rows)('destroyed=%s pending=%s readyState=%s -> %s', (destroyed, pending, readyState, expected) => {
    expect(flagsStatus(destroyed, pending, readyState)).toBe(expected);
  });
});
