import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { connectionState, supported, takeSocketError, tcpInfo, type Target } from '../src/index';
import { native } from '../src/probe/native';
import { caught } from './helpers/errors';

// Every bad input gives a coded error or a defined status, never a crash.

const functions = { connectionState, tcpInfo, takeSocketError } as const;

describe.each(Object.entries(functions))('%s: wrong argument types', (_name, fn) => {
  const call = fn as (t: unknown) => unknown;
  it.each([
    ['undefined', undefined, 'Received undefined'],
    ['null', null, 'Received null'],
    ['a string', '3', "Received type string ('3')"],
    ['an object', {}, 'Received an instance of Object'],
    ['a bigint', 3n, 'Received type bigint (3n)'],
    ['a UDP socket object', dgram.createSocket('udp4'), 'Received an instance of Socket'],
  ])('%s: TypeError ERR_INVALID_ARG_TYPE', (_label, value, received) => {
    const err = caught(() => call(value));
    expect(err).toBeInstanceOf(TypeError);
    expect(err.code).toBe('ERR_INVALID_ARG_TYPE');
    expect(err.message).toBe(
      `The "target" argument must be an instance of net.Socket, tls.TLSSocket or net.Server, or a file descriptor number. ${received}`,
    );
  });

  it.each([
    ['NaN', NaN],
    ['-1', -1],
    ['2**40', 2 ** 40],
    ['1.5', 1.5],
    ['Infinity', Infinity],
  ])('%s: RangeError ERR_OUT_OF_RANGE', (label, value) => {
    const err = caught(() => call(value));
    expect(err).toBeInstanceOf(RangeError);
    expect(err.code).toBe('ERR_OUT_OF_RANGE');
    expect(err.message).toBe(
      `The value of "target" is out of range. It must be an integer >= 0 and <= 2147483647. Received ${label === '2**40' ? '1099511627776' : label}`,
    );
  });
});

describe('fds the kernel rejects', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-bad-'));
  const file = path.join(dir, 'regular');
  fs.writeFileSync(file, 'x');
  const fileFd = fs.openSync(file, 'r');
  const closedFd = fs.openSync(file, 'r');
  fs.closeSync(closedFd);
  const udp = dgram.createSocket('udp4');
  afterAll(() => {
    fs.closeSync(fileFd);
    udp.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const expectSystem = (fn: (t: Target) => unknown, fd: number, code: string, errno: number) => {
    const err = caught(() => fn(fd));
    if (supported) {
      expect(err).toMatchObject({ code, errno, syscall: 'getsockopt' });
      expect(err.message).toBe(`getsockopt ${code}`);
    } else {
      expect(err.code).toBe('ERR_SOCKSTATE_UNSUPPORTED');
    }
  };

  it.each(Object.entries(functions))('%s on a regular file: ENOTSOCK', (_n, fn) => {
    expectSystem(fn as (t: Target) => unknown, fileFd, 'ENOTSOCK', -88);
  });

  it.each(Object.entries(functions))('%s on a closed fd: EBADF', (_n, fn) => {
    expectSystem(fn as (t: Target) => unknown, closedFd, 'EBADF', -9);
  });

  it('a UDP socket fd: EOPNOTSUPP for connectionState and tcpInfo, null for takeSocketError', async () => {
    udp.bind(0, '127.0.0.1');
    await once(udp, 'listening');
    // dgram keeps its handle behind a symbol; `_handle` is a deprecated
    // getter that Node 26 no longer has.
    const key = Object.getOwnPropertySymbols(udp).find((s) => s.description === 'state symbol');
    const fd = (udp as unknown as Record<symbol, { handle: { fd: number } }>)[key!]!.handle.fd;
    expect(fd).toBeGreaterThanOrEqual(0);
    expectSystem(connectionState, fd, 'EOPNOTSUPP', -95);
    expectSystem(tcpInfo, fd, 'EOPNOTSUPP', -95);
    if (supported) expect(takeSocketError(fd)).toBeNull();
    else expect(caught(() => takeSocketError(fd)).code).toBe('ERR_SOCKSTATE_UNSUPPORTED');
  });

  it.runIf(supported)('an AF_UNIX socket: tcpInfo EOPNOTSUPP, connectionState answers', async () => {
    const server = net.createServer();
    server.listen(path.join(dir, 'u.sock'));
    await once(server, 'listening');
    try {
      expect(caught(() => tcpInfo(server))).toMatchObject({ code: 'EOPNOTSUPP', syscall: 'getsockopt' });
      expect(connectionState(server).status).toBe('listening');
    } finally {
      server.close();
    }
  });

  it('a socket not yet connected and a destroyed one: defined status, coded errors', () => {
    const fresh = new net.Socket();
    expect(connectionState(fresh)).toMatchObject({ status: 'closed', tcpState: null, source: 'flags' });
    expect(caught(() => tcpInfo(fresh)).code).toBe(supported ? 'ERR_SOCKSTATE_NO_FD' : 'ERR_SOCKSTATE_UNSUPPORTED');
    fresh.destroy();
    expect(connectionState(fresh)).toMatchObject({ status: 'closed', tcpState: null, source: 'flags' });
    expect(caught(() => takeSocketError(fresh)).code).toBe(
      supported ? 'ERR_SOCKSTATE_NO_FD' : 'ERR_SOCKSTATE_UNSUPPORTED',
    );
  });
});

describe.runIf(supported)('the raw binding guards its own arguments', () => {
  it('rejects a non-number fd and a NaN fd without touching fd 0', () => {
    const out = new Int32Array(native!.probeSlots.COUNT);
    expect(caught(() => native!.probe('0' as unknown as number, out))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    expect(caught(() => native!.probe(NaN, out))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(caught(() => native!.probe(-1, out))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(caught(() => native!.probe(0, new Int32Array(2)))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(caught(() => native!.tcpInfo(0, new Uint8Array(8)))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(caught(() => native!.probeMany(new Int32Array(4), new Int32Array(4)))).toMatchObject({
      code: 'ERR_OUT_OF_RANGE',
    });
  });
});
