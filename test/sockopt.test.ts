import { execFileSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { getKeepAlive, getUserTimeout, setKeepAlive, setUserTimeout } from '../src/probe/sockopt';
import { perTestCleanup } from './helpers/sockets';
import { caught } from './helpers/errors';

const EOPNOTSUPP = os.constants.errno.EOPNOTSUPP;

const { cleanups, pair } = perTestCleanup();

function sysctl(name: string): number {
  return Number(fs.readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim());
}

/** One errno on Linux with ENOTSUP; reported under the socket name. */
function expectNotSupported(fn: () => unknown, syscall: string): void {
  const err = caught(fn);
  expect(err.errno).toBe(-EOPNOTSUPP);
  expect(err.code).toBe('EOPNOTSUPP');
  expect(err.syscall).toBe(syscall);
}

/** A bound UDP socket's fd, without dgram's deprecated `_handle` getter. */
function udpFd(udp: dgram.Socket): number {
  const key = Object.getOwnPropertySymbols(udp).find((s) => s.description === 'state symbol');
  const fd = (udp as unknown as Record<symbol, { handle: { fd: number } }>)[key!]!.handle.fd;
  expect(fd).toBeGreaterThanOrEqual(0);
  return fd;
}

/** The keepalive timer ss reports for our end of the connection, in ms, or null. */
function ssKeepaliveTimerMs(local: number, remote: number): number | null {
  const out = execFileSync('ss', ['-tinoH', 'state', 'established', `( sport = :${local} and dport = :${remote} )`], {
    encoding: 'utf8',
  });
  expect(out).toContain(`:${local}`);
  const m = /timer:\(keepalive,([^,]+),/.exec(out);
  if (m === null) return null;
  // ss prints e.g. "1min59sec", "29sec", "850ms", "2h" (see ss(8) print_timer).
  let ms = 0;
  for (const [, n, unit] of m[1]!.matchAll(/(\d+(?:\.\d+)?)(h|min|sec|ms)/g)) {
    ms += Number(n) * { h: 3_600_000, min: 60_000, sec: 1000, ms: 1 }[unit as 'h' | 'min' | 'sec' | 'ms'];
  }
  return ms;
}

describe('keepalive', () => {
  it('reads the system defaults on a fresh connection', async () => {
    const { client } = await pair();
    expect(getKeepAlive(client)).toEqual({
      enabled: false,
      idleMs: sysctl('tcp_keepalive_time') * 1000,
      intervalMs: sysctl('tcp_keepalive_intvl') * 1000,
      count: sysctl('tcp_keepalive_probes'),
    });
  });

  it('sets every tunable and reads it back exactly', async () => {
    const { client, peer } = await pair();
    setKeepAlive(client, { idleMs: 5000, intervalMs: 2000, count: 4 });
    expect(getKeepAlive(client)).toEqual({ enabled: true, idleMs: 5000, intervalMs: 2000, count: 4 });
    // By fd, on the other end, at the kernel's limits.
    const fd = (peer as unknown as { _handle: { fd: number } })._handle.fd;
    setKeepAlive(fd, { enable: true, idleMs: 32_767_000, intervalMs: 1000, count: 127 });
    expect(getKeepAlive(peer)).toEqual({ enabled: true, idleMs: 32_767_000, intervalMs: 1000, count: 127 });
    setKeepAlive(fd, { idleMs: 1000, intervalMs: 32_767_000, count: 1 });
    expect(getKeepAlive(fd)).toEqual({ enabled: true, idleMs: 1000, intervalMs: 32_767_000, count: 1 });
  });

  it('leaves omitted tunables unchanged, and disabling keeps them', async () => {
    const { client } = await pair();
    setKeepAlive(client, { idleMs: 7000, intervalMs: 3000, count: 5 });
    setKeepAlive(client, { count: 2 });
    expect(getKeepAlive(client)).toEqual({ enabled: true, idleMs: 7000, intervalMs: 3000, count: 2 });
    setKeepAlive(client, { enable: false });
    expect(getKeepAlive(client)).toEqual({ enabled: false, idleMs: 7000, intervalMs: 3000, count: 2 });
    setKeepAlive(client, {});
    expect(getKeepAlive(client).enabled).toBe(true);
  });

  it('reads back what Node itself set with socket.setKeepAlive()', async () => {
    const { client } = await pair();
    client.setKeepAlive(true, 9000);
    const settings = getKeepAlive(client);
    expect(settings.enabled).toBe(true);
    expect(settings.idleMs).toBe(9000);
  });

  // Node remembers the keepalive it applied and skips a socket.setKeepAlive()
  // that matches it (lib/net.js, every line from 20 to 26). After sockstate
  // changed keepalive through the fd, Node's next call must still apply.
  describe("keeps Node's own keepalive record in step", () => {
    it('Node re-enables keepalive that sockstate turned off', async () => {
      const { client } = await pair();
      client.setKeepAlive(true, 5000);
      setKeepAlive(client, { enable: false });
      expect(getKeepAlive(client).enabled).toBe(false);
      client.setKeepAlive(true, 5000);
      expect(getKeepAlive(client)).toMatchObject({ enabled: true, idleMs: 5000 });
    });

    it('Node turns off keepalive that sockstate turned on', async () => {
      const { client } = await pair();
      // Node's record: off, as for any socket connected without keepAlive.
      setKeepAlive(client, { idleMs: 30_000 });
      expect(getKeepAlive(client).enabled).toBe(true);
      client.setKeepAlive(false);
      expect(getKeepAlive(client).enabled).toBe(false);
    });

    it("Node's setKeepAlive() with the values it applied before replaces sockstate's tuning", async () => {
      const { client } = await pair();
      client.setKeepAlive(true, 5000);
      const nodeTuning = getKeepAlive(client);
      setKeepAlive(client, { idleMs: 30_000, intervalMs: 3000, count: 4 });
      client.setKeepAlive(true, 5000);
      expect(getKeepAlive(client)).toEqual(nodeTuning);
    });

    it("Node's setKeepAlive(false) after sockstate turned keepalive off is still right", async () => {
      const { client } = await pair();
      client.setKeepAlive(true, 5000);
      setKeepAlive(client, { enable: false });
      client.setKeepAlive(false);
      expect(getKeepAlive(client).enabled).toBe(false);
      // And the record says off: enabling again applies.
      client.setKeepAlive(true, 7000);
      expect(getKeepAlive(client)).toMatchObject({ enabled: true, idleMs: 7000 });
    });
  });

  it('reads only the options object\'s own properties, never inherited ones', async () => {
    const { client } = await pair();
    const proto = Object.prototype as Record<string, unknown>;
    proto.idleMs = 5000;
    proto.enable = false;
    proto.count = 0;
    try {
      setKeepAlive(client, {});
    } finally {
      delete proto.idleMs;
      delete proto.enable;
      delete proto.count;
    }
    expect(getKeepAlive(client)).toEqual({
      enabled: true,
      idleMs: sysctl('tcp_keepalive_time') * 1000,
      intervalMs: sysctl('tcp_keepalive_intvl') * 1000,
      count: sysctl('tcp_keepalive_probes'),
    });
  });

  it('arms the kernel keepalive timer that ss reports', async () => {
    const { client } = await pair();
    const local = client.localPort!;
    const remote = client.remotePort!;
    // Keepalive off: no keepalive timer on an idle connection.
    expect(ssKeepaliveTimerMs(local, remote)).toBeNull();
    setKeepAlive(client, { idleMs: 30_000, intervalMs: 5000, count: 3 });
    const remaining = ssKeepaliveTimerMs(local, remote);
    expect(remaining).not.toBeNull();
    // Armed from our idle time, not from the 2-hour default.
    expect(remaining!).toBeGreaterThan(0);
    expect(remaining!).toBeLessThanOrEqual(30_000);
    setKeepAlive(client, { enable: false });
    expect(ssKeepaliveTimerMs(local, remote)).toBeNull();
  });

  it('rejects durations that are not whole seconds in range, and bad counts', async () => {
    const { client } = await pair();
    for (const idleMs of [0, 999, 1500, -1000, 32_768_000, Number.NaN, Number.POSITIVE_INFINITY, 1000.5]) {
      const err = caught(() => setKeepAlive(client, { idleMs }));
      expect(err).toBeInstanceOf(RangeError);
      expect(err.code).toBe('ERR_OUT_OF_RANGE');
      expect(err.message).toContain('"options.idleMs"');
    }
    expect(caught(() => setKeepAlive(client, { intervalMs: 2500 })).code).toBe('ERR_OUT_OF_RANGE');
    for (const count of [0, 128, 1.5, -1]) {
      const err = caught(() => setKeepAlive(client, { count }));
      expect(err.code).toBe('ERR_OUT_OF_RANGE');
      expect(err.message).toContain('"options.count"');
    }
    const typeErrors: [unknown, string][] = [
      [{ idleMs: '5000' }, 'options.idleMs'],
      [{ intervalMs: null }, 'options.intervalMs'],
      [{ count: 2n }, 'options.count'],
      [{ enable: 1 }, 'options.enable'],
      [null, 'options'],
      ['on', 'options'],
    ];
    for (const [options, name] of typeErrors) {
      const err = caught(() => setKeepAlive(client, options as never));
      expect(err).toBeInstanceOf(TypeError);
      expect(err.code).toBe('ERR_INVALID_ARG_TYPE');
      expect(err.message).toContain(`"${name}"`);
    }
    const err = caught(() => setKeepAlive(client, { enable: false, idleMs: 5000 }));
    expect(err).toBeInstanceOf(TypeError);
    expect(err.code).toBe('ERR_INVALID_ARG_VALUE');
    // Nothing was applied by the rejected calls.
    expect(getKeepAlive(client).enabled).toBe(false);
  });
});

describe('keepalive options of the wrong type', () => {
  // Each option is checked for its type as Node checks its own: only an
  // omitted (or undefined) option takes the default, null never does.
  const cases: [string, unknown, string, string][] = [
    ['enable: null', { enable: null }, 'options.enable', 'of type boolean. Received null'],
    ['enable: 0', { enable: 0 }, 'options.enable', 'of type boolean. Received type number (0)'],
    ['enable: "false"', { enable: 'false' }, 'options.enable', "of type boolean. Received type string ('false')"],
    ['enable: null with tunables', { enable: null, idleMs: 5000 }, 'options.enable', 'of type boolean. Received null'],
    ['idleMs: null', { idleMs: null }, 'options.idleMs', 'of type number. Received null'],
    ['intervalMs: true', { intervalMs: true }, 'options.intervalMs', 'of type number. Received type boolean (true)'],
    ['count: null', { count: null }, 'options.count', 'of type number. Received null'],
    ['count: "3"', { count: '3' }, 'options.count', "of type number. Received type string ('3')"],
  ];
  it.each(cases)('%s: ERR_INVALID_ARG_TYPE naming the option, nothing applied', async (_, options, name, expected) => {
    const { client } = await pair();
    const before = getKeepAlive(client);
    const err = caught(() => setKeepAlive(client, options as never));
    expect(err).toBeInstanceOf(TypeError);
    expect(err.code).toBe('ERR_INVALID_ARG_TYPE');
    expect(err.message).toBe(`The "${name}" argument must be ${expected}`);
    expect(getKeepAlive(client)).toEqual(before);
    expect(before.enabled).toBe(false);
  });

  it('an explicitly undefined option is omitted, as in Node', async () => {
    const { client } = await pair();
    setKeepAlive(client, { enable: undefined, idleMs: 5000, intervalMs: undefined, count: undefined });
    expect(getKeepAlive(client)).toMatchObject({ enabled: true, idleMs: 5000 });
  });

  it('setUserTimeout: null, a boolean or a bigint is ERR_INVALID_ARG_TYPE naming "ms"', async () => {
    const { client } = await pair();
    for (const [ms, received] of [
      [null, 'Received null'],
      [true, 'Received type boolean (true)'],
      [5n, 'Received type bigint (5n)'],
    ] as const) {
      const err = caught(() => setUserTimeout(client, ms as never));
      expect(err).toBeInstanceOf(TypeError);
      expect(err.code).toBe('ERR_INVALID_ARG_TYPE');
      expect(err.message).toBe(`The "ms" argument must be of type number. ${received}`);
    }
    expect(getUserTimeout(client)).toBe(0);
  });
});

describe('user timeout', () => {
  it('is 0 by default and reads back exactly what was set', async () => {
    const { client } = await pair();
    expect(getUserTimeout(client)).toBe(0);
    setUserTimeout(client, 1500);
    expect(getUserTimeout(client)).toBe(1500);
    setUserTimeout(client, 2 ** 31 - 1);
    expect(getUserTimeout(client)).toBe(2 ** 31 - 1);
    setUserTimeout(client, 0);
    expect(getUserTimeout(client)).toBe(0);
  });

  it('can be set while the socket is still connecting', async () => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    cleanups.push(() => {
      client.destroy();
      server.close();
    });
    // The connect syscall is issued a tick later: no fd yet.
    expect(caught(() => setUserTimeout(client, 2000)).code).toBe('ERR_SOCKSTATE_NO_FD');
    await new Promise((resolve) => setImmediate(resolve));
    expect(client.connecting).toBe(true);
    setUserTimeout(client, 2000);
    await once(client, 'connect');
    expect(getUserTimeout(client)).toBe(2000);
  });

  it('rejects bad values', async () => {
    const { client } = await pair();
    for (const ms of [-1, 2 ** 31, 1.5, Number.NaN]) {
      const err = caught(() => setUserTimeout(client, ms));
      expect(err).toBeInstanceOf(RangeError);
      expect(err.code).toBe('ERR_OUT_OF_RANGE');
      expect(err.message).toContain('"ms"');
    }
    for (const ms of ['100', undefined, null]) {
      const err = caught(() => setUserTimeout(client, ms as never));
      expect(err).toBeInstanceOf(TypeError);
      expect(err.code).toBe('ERR_INVALID_ARG_TYPE');
    }
    expect(getUserTimeout(client)).toBe(0);
  });
});

describe('targets the options cannot apply to', () => {
  it('gives EOPNOTSUPP for an AF_UNIX socket, also when disabling', async () => {
    const sockPath = path.join(os.tmpdir(), `sockstate-sockopt-${process.pid}.sock`);
    fs.rmSync(sockPath, { force: true });
    const server = net.createServer((s) => s.on('error', () => {}));
    server.listen(sockPath);
    await once(server, 'listening');
    const client = net.connect(sockPath);
    cleanups.push(() => {
      client.destroy();
      server.close();
    });
    await once(client, 'connect');
    expectNotSupported(() => setKeepAlive(client, { idleMs: 5000 }), 'setsockopt');
    expectNotSupported(() => setKeepAlive(client, { enable: false }), 'setsockopt');
    expectNotSupported(() => getKeepAlive(client), 'getsockopt');
    expectNotSupported(() => setUserTimeout(client, 1000), 'setsockopt');
    expectNotSupported(() => getUserTimeout(client), 'getsockopt');
  });

  it('gives EOPNOTSUPP for a UDP socket fd', async () => {
    const udp = dgram.createSocket('udp4');
    cleanups.push(() => udp.close());
    udp.bind(0, '127.0.0.1');
    await once(udp, 'listening');
    const fd = udpFd(udp);
    expectNotSupported(() => setKeepAlive(fd, { enable: false }), 'setsockopt');
    expectNotSupported(() => getKeepAlive(fd), 'getsockopt');
    expectNotSupported(() => setUserTimeout(fd, 1000), 'setsockopt');
    expectNotSupported(() => getUserTimeout(fd), 'getsockopt');
  });

  it('gives ENOTSOCK for a regular file and EBADF for a closed fd', () => {
    const file = fs.openSync(__filename, 'r');
    cleanups.push(() => fs.closeSync(file));
    for (const [fn, syscall] of [
      [() => setKeepAlive(file, {}), 'setsockopt'],
      [() => getKeepAlive(file), 'getsockopt'],
      [() => setUserTimeout(file, 10), 'setsockopt'],
      [() => getUserTimeout(file), 'getsockopt'],
    ] as const) {
      expect(caught(fn)).toMatchObject({ code: 'ENOTSOCK', errno: -os.constants.errno.ENOTSOCK, syscall });
    }
    const closed = fs.openSync(__filename, 'r');
    fs.closeSync(closed);
    expect(caught(() => getUserTimeout(closed))).toMatchObject({ code: 'EBADF', syscall: 'getsockopt' });
    expect(caught(() => setKeepAlive(closed, {}))).toMatchObject({ code: 'EBADF', syscall: 'setsockopt' });
  });

  it('gives ERR_SOCKSTATE_NO_FD for a destroyed socket and type errors for non-targets', async () => {
    const { client } = await pair();
    client.destroy();
    for (const fn of [
      () => setKeepAlive(client, {}),
      () => getKeepAlive(client),
      () => setUserTimeout(client, 1),
      () => getUserTimeout(client),
    ]) {
      expect(caught(fn).code).toBe('ERR_SOCKSTATE_NO_FD');
    }
    for (const bad of [undefined, null, '3', {}, Number.NaN]) {
      const err = caught(() => getKeepAlive(bad as never));
      expect(err.code).toBe(typeof bad === 'number' ? 'ERR_OUT_OF_RANGE' : 'ERR_INVALID_ARG_TYPE');
      expect(err.message).toContain('"target"');
    }
  });
});

describe('without the addon', () => {
  it('throws ERR_SOCKSTATE_UNSUPPORTED after validating the arguments', async () => {
    vi.stubEnv('SOCKSTATE_FORCE_FALLBACK', '1');
    vi.resetModules();
    try {
      const fallback = await import('../src/probe/sockopt');
      const { client } = await pair();
      expect(caught(() => fallback.setKeepAlive(client, { idleMs: 1500 })).code).toBe('ERR_OUT_OF_RANGE');
      expect(caught(() => fallback.setKeepAlive(client, { idleMs: 2000 })).code).toBe('ERR_SOCKSTATE_UNSUPPORTED');
      expect(caught(() => fallback.getKeepAlive(client)).code).toBe('ERR_SOCKSTATE_UNSUPPORTED');
      expect(caught(() => fallback.setUserTimeout(client, 1000)).code).toBe('ERR_SOCKSTATE_UNSUPPORTED');
      expect(caught(() => fallback.getUserTimeout(3)).code).toBe('ERR_SOCKSTATE_UNSUPPORTED');
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});
