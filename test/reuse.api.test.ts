import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { supported } from '../src/index';
import { checkReusable, isReusable, type ReuseReason, type ReuseVerdict } from '../src/policy/reuse';
import type { ConnectionStatus } from '../src/probe/state';
import { busyWait, listen, perTestCleanup, waitFor } from './helpers/sockets';
import { caught } from './helpers/errors';

// isReusable/checkReusable on real loopback sockets. Where the kernel knows
// before Node does (the peer's bytes, FIN or RST not yet read), the check
// right away is the kernel's alone; once Node has read them, both the
// kernel and the flags-only fallback must give the same verdict.

const { cleanups, pair } = perTestCleanup();

/** checkReusable, also asserting that isReusable agrees with it. */
function verdict(target: net.Socket | net.Server | number): ReuseVerdict {
  const v = checkReusable(target);
  expect(isReusable(target)).toBe(v.reusable);
  return v;
}

function expectVerdict(target: net.Socket | net.Server | number, reason: ReuseReason, status: ConnectionStatus): ReuseVerdict {
  const v = verdict(target);
  expect({ reusable: v.reusable, reason: v.reason, status: v.state.status }).toEqual({
    reusable: reason === 'idle',
    reason,
    status,
  });
  return v;
}

describe('isReusable / checkReusable', () => {
  it('an idle open connection is reusable', async () => {
    const { client } = await pair();
    const v = expectVerdict(client, 'idle', 'open');
    expect(v.state.source).toBe(supported ? 'kernel' : 'flags');
    expect(v.state.unreadBytes).toBe(0);
  });

  it('bytes the peer sent unasked make it dataPending, from the kernel at once and from Node once read', async () => {
    const { client, peer } = await pair();
    client.pause();
    peer.write('abc');
    if (supported) {
      // Same tick: only the kernel has the bytes.
      const v = expectVerdict(client, 'dataPending', 'open');
      expect(v.state.unreadBytes).toBe(3);
      expect(client.readableLength).toBe(0);
    } else {
      expectVerdict(client, 'idle', 'open');
    }
    await waitFor(() => client.readableLength === 3, 5000, 'Node to buffer the bytes');
    expectVerdict(client, 'dataPending', 'open');
  });

  it('bytes followed by the peer closing are dataPending, not closed', async () => {
    const { client, peer } = await pair();
    client.pause();
    // write() reaches the kernel at once and destroy() closes the fd, so the
    // FIN follows the bytes before this tick ends.
    peer.write('bye');
    peer.destroy();
    if (supported) {
      const v = expectVerdict(client, 'dataPending', 'peerClosed');
      expect(v.state.readClosed).toBe(true);
      expect(v.state.unreadBytes).toBe(3);
    }
    await waitFor(() => client.readableLength === 3, 5000, 'Node to buffer the bytes');
    expect(verdict(client)).toMatchObject({ reusable: false, reason: 'dataPending' });
  });

  it('a peer that closed makes it closed (peerClosed)', async () => {
    const { client, peer } = await pair();
    peer.destroy();
    if (supported) {
      const v = expectVerdict(client, 'closed', 'peerClosed');
      expect(v.state.tcpState).toBe('CLOSE_WAIT');
    }
    client.resume();
    await once(client, 'end');
    expectVerdict(client, 'closed', 'peerClosed');
  });

  it('a reset makes it closed: reset while unread, then closed once Node has seen the error', async () => {
    const { client, peer } = await pair();
    const errored = once(client, 'error');
    peer.resetAndDestroy();
    if (supported) {
      // Spin without yielding: once the loop runs, Node reads the RST and
      // destroys the socket.
      const deadline = Date.now() + 5000;
      while (checkReusable(client).state.status !== 'reset') {
        if (Date.now() > deadline) throw new Error('timed out waiting for the RST');
      }
      const v = expectVerdict(client, 'closed', 'reset');
      expect(v.state.pendingError).toBe(true);
    }
    const [err] = (await errored) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
    expectVerdict(client, 'closed', 'closed');
  });

  it('our own end() rules it out at once, whatever the kernel says', async () => {
    const { client } = await pair();
    client.end();
    const v = verdict(client);
    expect({ reusable: v.reusable, reason: v.reason }).toEqual({ reusable: false, reason: 'closed' });
  });

  it('a connecting, a destroyed and a never-connected socket are closed', async () => {
    const server = net.createServer();
    const port = await listen(server);
    cleanups.push(() => server.close());
    const connecting = net.connect(port, '127.0.0.1');
    cleanups.push(() => connecting.destroy());
    expectVerdict(connecting, 'closed', 'connecting');
    await once(connecting, 'connect');
    connecting.destroy();
    expectVerdict(connecting, 'closed', 'closed');
    expectVerdict(new net.Socket(), 'closed', 'closed');
  });

  it('a listening server is not a reusable connection', async () => {
    const server = net.createServer();
    await listen(server);
    expectVerdict(server, 'closed', 'listening');
    server.close();
    expectVerdict(server, 'closed', 'closed');
  });

  it('AF_UNIX connections follow the same rules', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-reuse-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const server = net.createServer({ allowHalfOpen: true });
    server.listen(path.join(dir, 's'));
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    const client = net.connect({ path: path.join(dir, 's'), allowHalfOpen: true });
    await once(client, 'connect');
    const [peer] = await accepted;
    cleanups.push(() => {
      client.destroy();
      peer.destroy();
      server.close();
    });
    expectVerdict(client, 'idle', 'open');
    peer.destroy();
    if (supported) expectVerdict(client, 'closed', 'peerClosed');
    client.resume();
    await once(client, 'end');
    expectVerdict(client, 'closed', 'peerClosed');
  });

  it('a raw fd is answered by the kernel, or refused without it', async () => {
    const { client, peer } = await pair();
    const fd = (client as unknown as { _handle: { fd: number } })._handle.fd;
    if (supported) {
      expectVerdict(fd, 'idle', 'open');
      peer.destroy();
      expectVerdict(fd, 'closed', 'peerClosed');
    } else {
      for (const call of [() => isReusable(fd), () => checkReusable(fd)]) {
        expect(call).toThrow(expect.objectContaining({ name: 'SockstateError', code: 'ERR_SOCKSTATE_UNSUPPORTED' }));
      }
    }
  });

  it('rejects what is not a target, as Node does', () => {
    for (const call of [isReusable, checkReusable]) {
      expect(() => call('socket' as unknown as net.Socket)).toThrow(
        expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }),
      );
      expect(() => call({} as net.Socket)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
      expect(() => call(-1)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
      expect(() => call(1.5)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    }
  });
});

describe('ReuseOptions', () => {
  it('are validated, with errors naming the option', async () => {
    const { client } = await pair();
    for (const call of [isReusable, checkReusable] as ((t: net.Socket, o?: unknown) => unknown)[]) {
      for (const bad of [null, 5, 'x', true]) {
        const err = caught(() => call(client, bad));
        expect({ name: err.name, code: err.code }).toEqual({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
        expect(err.message).toContain('"options"');
      }
      const notNumber = caught(() => call(client, { maxSilentMs: '1000' }));
      expect({ name: notNumber.name, code: notNumber.code }).toEqual({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
      expect(notNumber.message).toContain('"options.maxSilentMs"');
      for (const n of [-1, 1.5, 2 ** 32, Number.NaN, Number.POSITIVE_INFINITY]) {
        const err = caught(() => call(client, { maxSilentMs: n }));
        expect({ name: err.name, code: err.code }).toEqual({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
        expect(err.message).toContain('"options.maxSilentMs"');
      }
      const notBool = caught(() => call(client, { allowStalled: 1 }));
      expect({ name: notBool.name, code: notBool.code }).toEqual({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
      expect(notBool.message).toContain('"options.allowStalled"');
    }
    // The bounds themselves are accepted.
    expect(checkReusable(client, { maxSilentMs: 2 ** 32 - 1, allowStalled: false }).reusable).toBe(true);
  });

  it('are read from the caller\'s own properties only, never the prototype chain', async () => {
    const { client } = await pair();
    const proto = Object.prototype as Record<string, unknown>;
    proto.maxSilentMs = 0;
    proto.allowStalled = 'not a boolean';
    try {
      busyWait(30);
      expect(checkReusable(client, {})).toMatchObject({ reusable: true, reason: 'idle' });
      expect(isReusable(client, {})).toBe(true);
      expect(checkReusable(client, {}).silentMs).toBeUndefined();
      // Inherited from an object the caller made is still not the caller's own.
      expect(checkReusable(client, Object.create({ maxSilentMs: 0 }))).toMatchObject({ reusable: true, reason: 'idle' });
    } finally {
      delete proto.maxSilentMs;
      delete proto.allowStalled;
    }
  });

  it('bound silence by the kernel clocks, or leave the verdict plain when answered from flags', async () => {
    const { client } = await pair();
    busyWait(300);
    const v = checkReusable(client, { maxSilentMs: 200 });
    expect(isReusable(client, { maxSilentMs: 200 })).toBe(v.reusable);
    if (supported) {
      expect(v).toMatchObject({ reusable: false, reason: 'silent', state: { source: 'kernel', status: 'open' } });
      expect(v.silentMs).toBeGreaterThanOrEqual(290);
    } else {
      // No kernel clock to read: the verdict says where it came from.
      expect(v).toMatchObject({ reusable: true, reason: 'idle', state: { source: 'flags', status: 'open' } });
      expect(v.silentMs).toBeUndefined();
    }
  });

  it('unreadData is validated: a string, \'goodbye\' or \'message\', from the caller\'s own properties', async () => {
    const { client } = await pair();
    for (const call of [isReusable, checkReusable] as ((t: net.Socket, o?: unknown) => unknown)[]) {
      for (const bad of [1, true, null, {}]) {
        const err = caught(() => call(client, { unreadData: bad }));
        expect({ name: err.name, code: err.code }).toEqual({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
        expect(err.message).toContain('"options.unreadData"');
      }
      for (const bad of ['', 'Message', 'close']) {
        const err = caught(() => call(client, { unreadData: bad }));
        expect({ name: err.name, code: err.code }).toEqual({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
        expect(err.message).toContain("'options.unreadData'");
      }
    }
    // Inherited is not the caller's own: the default applies.
    expect(checkReusable(client, Object.create({ unreadData: 'nonsense' }))).toMatchObject({ reusable: true, reason: 'idle' });
    const { client: chatty, peer } = await pair();
    chatty.pause();
    peer.write('x');
    await waitFor(() => chatty.readableLength === 1, 5000, 'Node to buffer the byte');
    expect(checkReusable(chatty, Object.create({ unreadData: 'message' }))).toMatchObject({ reusable: false, reason: 'dataPending' });
  });

  it("unreadData 'message': bytes on an open connection are the owner's to read, not a goodbye", async () => {
    const { client, peer } = await pair();
    client.pause();
    peer.write('note');
    const message = { unreadData: 'message' } as const;
    if (supported) {
      // Same tick: the bytes are in the kernel only.
      expect(checkReusable(client, message)).toMatchObject({ reusable: true, reason: 'idle', state: { status: 'open', unreadBytes: 4 } });
      expect(isReusable(client, message)).toBe(true);
    }
    await waitFor(() => client.readableLength === 4, 5000, 'Node to buffer the bytes');
    // Read by Node, unread by the owner: still a message.
    expect(checkReusable(client, message)).toMatchObject({ reusable: true, reason: 'idle', state: { status: 'open' } });
    expect(isReusable(client, message)).toBe(true);
    // The default, and 'goodbye' said explicitly, treat them as the peer's goodbye.
    for (const options of [undefined, {}, { unreadData: 'goodbye' } as const]) {
      expect(checkReusable(client, options)).toMatchObject({ reusable: false, reason: 'dataPending' });
      expect(isReusable(client, options)).toBe(false);
    }
  });

  it("unreadData 'message' still rules out a peer that closed or reset, with or without bytes in front, and our own end()", async () => {
    const message = { unreadData: 'message' } as const;
    // Bytes, then the FIN: the goodbye comes with its FIN.
    const bye = await pair();
    bye.client.pause();
    bye.peer.write('FATAL');
    bye.peer.destroy();
    if (supported) {
      expect(checkReusable(bye.client, message)).toMatchObject({ reusable: false, reason: 'dataPending', state: { status: 'peerClosed', readClosed: true } });
      expect(isReusable(bye.client, message)).toBe(false);
    }
    bye.client.resume();
    await once(bye.client, 'end');
    expect(checkReusable(bye.client, message)).toMatchObject({ reusable: false, reason: 'closed' });
    expect(isReusable(bye.client, message)).toBe(false);

    // A reset.
    const reset = await pair();
    const errored = once(reset.client, 'error');
    reset.peer.resetAndDestroy();
    if (supported) {
      const deadline = Date.now() + 5000;
      while (checkReusable(reset.client).state.status !== 'reset') {
        if (Date.now() > deadline) throw new Error('timed out waiting for the RST');
      }
      expect(checkReusable(reset.client, message)).toMatchObject({ reusable: false, reason: 'closed', state: { pendingError: true } });
      expect(isReusable(reset.client, message)).toBe(false);
    }
    await errored;
    expect(isReusable(reset.client, message)).toBe(false);

    // Our own end(), with bytes waiting.
    const ended = await pair();
    ended.client.pause();
    ended.peer.write('x');
    ended.client.end();
    expect(checkReusable(ended.client, message)).toMatchObject({ reusable: false });
    expect(isReusable(ended.client, message)).toBe(false);
  });

  it('do not change the verdict on a closed connection or a raw fd error', async () => {
    const { client, peer } = await pair();
    peer.destroy();
    client.resume();
    await once(client, 'end');
    expect(checkReusable(client, { maxSilentMs: 1 })).toMatchObject({ reusable: false, reason: 'closed' });
    client.destroy();
    expect(checkReusable(client, {})).toMatchObject({ reusable: false, reason: 'closed', state: { status: 'closed' } });
    expect(isReusable(client, {})).toBe(false);
    const code = supported ? 'EBADF' : 'ERR_SOCKSTATE_UNSUPPORTED';
    expect(caught(() => checkReusable(1_000_000, {})).code).toBe(code);
    expect(caught(() => isReusable(1_000_000, { maxSilentMs: 1 })).code).toBe(code);
  });
});
