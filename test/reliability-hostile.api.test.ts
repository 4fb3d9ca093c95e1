import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { describe, expect, it } from 'vitest';
import * as sockstate from '../src/index';
import { perTestCleanup } from './helpers/sockets';

// Every export, called with every kind of hostile argument: each call
// either succeeds or fails with a coded error (Node's ERR_* or an errno
// name); never an uncoded TypeError, a crash or a hang.

const { cleanups, pair } = perTestCleanup();

const CODE = /^(ERR_[A-Z0-9_]+|E[A-Z0-9]+)$/;

function hostileValues(): [string, unknown][] {
  const throwingProxy = new Proxy(
    {},
    {
      get() {
        throw new Error('proxy get');
      },
    },
  );
  const udp = dgram.createSocket('udp4');
  cleanups.push(() => udp.close());
  return [
    ['undefined', undefined],
    ['null', null],
    ['NaN', Number.NaN],
    ['-1', -1],
    ['-0', -0],
    ['1.5', 1.5],
    ['2**31', 2 ** 31],
    ['2**53', 2 ** 53],
    ['Infinity', Number.POSITIVE_INFINITY],
    ["'3'", '3'],
    ['{}', {}],
    ['[]', []],
    ['a symbol', Symbol('x')],
    ['10n', 10n],
    ['a function', () => 3],
    ['Object.create(net.Socket.prototype)', Object.create(net.Socket.prototype)],
    ['Object.create(net.Server.prototype)', Object.create(net.Server.prototype)],
    ['a Proxy of {} that throws on get', throwingProxy],
    ['a never-connected net.Socket', new net.Socket()],
    ['a net.Server never listened', net.createServer()],
    ['a UDP socket object', udp],
    ['a huge sparse array', new Array(2 ** 32 - 1)],
    ['an array of holes', new Array(1e5)],
    ['an options object with hostile getters', { get intervalMs(): number { throw Object.assign(new Error('getter'), { code: 'EGETTER' }); } }],
  ];
}

type AnyFunction = (...args: unknown[]) => unknown;

const CLASSES = new Set<unknown>([sockstate.SockstateError, sockstate.ConnectionWatcher]);

// The synchronous exports and the agents' constructors; the asynchronous
// sweep (…Async) has a suite of its own.
const exported = Object.entries(sockstate).filter(
  (entry): entry is [string, AnyFunction] =>
    typeof entry[1] === 'function' && !CLASSES.has(entry[1]) && !entry[0].endsWith('Async'),
);

async function outcome(call: () => unknown): Promise<string> {
  try {
    const value = call();
    if (value instanceof Promise) await value;
    if (value instanceof sockstate.ConnectionWatcher) value.stop();
    if (value !== null && typeof value === 'object' && 'destroy' in value && typeof value.destroy === 'function') {
      (value as { destroy(): void }).destroy();
    }
    return 'ok';
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    // The caller's own getter or Proxy threw: passed through untouched.
    if ((err as Error).message === 'proxy get' || code === 'EGETTER') return 'caller';
    if (typeof code !== 'string' || !CODE.test(code)) {
      return `UNCODED ${(err as Error).name}: ${(err as Error).message}`;
    }
    return code;
  }
}

describe('hostile arguments to every export', () => {
  it('lists the exports it covers', () => {
    const names = exported.map(([name]) => name);
    for (const name of ['connectionState', 'tcpInfo', 'takeSocketError', 'isReusable', 'checkReusable', 'probeMany', 'watch', 'setKeepAlive', 'getKeepAlive', 'setUserTimeout', 'getUserTimeout', 'Agent', 'HttpsAgent']) {
      expect(names).toContain(name);
    }
  });

  it.each(exported)('%s: as the first argument, and as the second after a live socket', async (name, fn) => {
    const { client } = await pair();
    const isClass = /^[A-Z]/.test(name);
    const invoke = (...args: unknown[]) => (isClass ? () => new (fn as unknown as new (...a: unknown[]) => unknown)(...args) : () => fn(...args));
    const uncoded: string[] = [];
    for (const [label, value] of hostileValues()) {
      for (const [where, args] of [
        ['first', [value]],
        ['second', [client, value]],
      ] as const) {
        const result = await outcome(invoke(...args));
        if (result.startsWith('UNCODED')) uncoded.push(`${where} ${label}: ${result}`);
      }
    }
    expect(uncoded).toEqual([]);
    expect(client.destroyed).toBe(false);
  });
});
