import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serverAvailable } from './helpers/programs';
import { findRuntime, RUNTIMES_INSTALL, runFixture, scratch } from './helpers/runtimes';

// Deno loads the addon, but its node:net sockets expose no fd, so every
// answer comes from Node's flags: what that means, step by step, by
// test/fixtures/runtime-core.cjs. Deno from the npm registry
// (@deno/linux-x64-glibc, pinned in .ci/runtimes), or $DENO, or deno on PATH.
const deno = findRuntime('deno', 'DENO', 'deno/deno');
const linuxGlibc = process.platform === 'linux' && process.arch === 'x64' && !fs.existsSync('/etc/alpine-release');
const haveDeno = linuxGlibc && serverAvailable('Deno', deno, `${RUNTIMES_INSTALL}, or put deno on PATH`);
const env = { DENO_NO_UPDATE_CHECK: '1', DENO_NO_PROMPT: '1', NO_COLOR: '1' };

const flags = (status: string, readClosed: boolean) => ({ status, tcpState: null, readClosed, unreadBytes: 0, source: 'flags' });
const idle = { reusable: true, reason: 'idle', isReusable: true };
const open = { state: flags('open', false), verdict: idle };

describe.runIf(haveDeno)('under Deno', () => {
  const cwd = scratch('sockstate-deno-');
  afterAll(() => fs.rmSync(cwd, { recursive: true, force: true }));

  it('the addon loads; every answer comes from flags, so what only the kernel knows goes unseen', async () => {
    const version = execFileSync(deno!, ['--version'], { encoding: 'utf8', env: { ...process.env, ...env } }).split('\n')[0];
    const { json, stderr } = await runFixture([deno!, 'run', '-A'], cwd, env);
    expect(stderr).toBe('');
    expect(json, version).toEqual({
      supported: true,
      unsupportedReason: null,
      unconnected: { state: flags('closed', true), tcpInfo: 'ERR_SOCKSTATE_NO_FD', isReusable: false },
      // tcpInfo(), takeSocketError() and the like need an fd: ERR_SOCKSTATE_NO_FD.
      idle: { ...open, tcpInfo: 'ERR_SOCKSTATE_NO_FD' },
      // The peer has closed; the kernel knows (CLOSE_WAIT under Node and Bun), the flags do not.
      peerClosedSameTick: { nodeSaysOpen: 'open', ...open },
      peerClosedLater: { state: flags('closed', true) },
      // Unread bytes, then a reset or a FIN: none of it is visible.
      unreadThenReset: { before: open, after: { ...open, takeSocketError: 'ERR_SOCKSTATE_NO_FD', destroyed: false, buffered: 0 } },
      unreadThenFin: { before: open, after: { ...open, takeSocketError: 'ERR_SOCKSTATE_NO_FD', destroyed: false, buffered: 0 } },
      probeMany: [
        { status: 'closed', tcpState: null, source: 'flags', error: null },
        { status: 'open', tcpState: null, source: 'flags', error: null },
        { status: 'closed', tcpState: null, source: 'flags', error: null },
      ],
      // Deno's own HTTP client did not reuse the dead pooled socket, with
      // Node's Agent as with sockstate's, which had nothing to evict.
      stockAgent: {
        first: { status: 200, body: '/first', reused: false },
        pooledAfterFirst: 1,
        second: { status: 200, body: '/second', reused: false },
        third: { status: 200, body: '/third', reused: true },
      },
      agent: {
        first: { status: 200, body: '/first', reused: false },
        pooledAfterFirst: 1,
        second: { status: 200, body: '/second', reused: false },
        third: { status: 200, body: '/third', reused: true },
        staleSocketsDestroyed: 0,
      },
    });
  }, 60_000);

  it("why sockstate does not take the fd from the handle's fdForIpc(): a new dup per call that JS cannot close and that keeps the connection open", () => {
    const out = execFileSync(deno!, ['run', '-A', path.join(__dirname, 'fixtures', 'runtime-deno-fd.cjs')], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 30_000,
    });
    expect(JSON.parse(out)).toEqual({
      fdProperty: 'undefined',
      eachCallANewFd: true,
      sameSocket: true,
      closeSync: 'EBADF',
      controlPeerSawFin: true,
      peerSawFin: false,
      dupsStillOpen: true,
    });
  }, 60_000);
});
