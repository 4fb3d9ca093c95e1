import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { serverAvailable } from './helpers/programs';
import { findRuntime, RUNTIMES_INSTALL, runFixture, scratch } from './helpers/runtimes';

// Bun runs Node-API addons. The core API (connectionState, tcpInfo,
// isReusable, checkReusable, probeMany, takeSocketError, the Agent) on real
// loopback sockets, by test/fixtures/runtime-core.cjs, under Node and under
// Bun: the answers must match but for the one difference written out below.
// Bun from the npm registry (@oven/bun-linux-x64, pinned in .ci/runtimes),
// or $BUN, or bun on PATH.
const bun = findRuntime('bun', 'BUN', 'bun/bin/bun');
const linuxGlibc = process.platform === 'linux' && process.arch === 'x64' && !fs.existsSync('/etc/alpine-release');
const haveBun = linuxGlibc && serverAvailable('Bun', bun, `${RUNTIMES_INSTALL}, or put bun on PATH`);

describe.runIf(haveBun)(`under Bun`, () => {
  const cwd = scratch('sockstate-bun-');
  afterAll(() => fs.rmSync(cwd, { recursive: true, force: true }));

  it('the same answers as under Node, but for bytes before a reset', async () => {
    const version = execFileSync(bun!, ['--version'], { encoding: 'utf8' }).trim();
    const [node, underBun] = await Promise.all([runFixture([process.execPath], cwd), runFixture([bun!], cwd)]);
    expect(node.stderr).toBe('');
    expect(underBun.stderr).toBe('');

    // Node, for the record: every answer from the kernel where a socket has an fd.
    expect(node.json).toMatchObject({
      supported: true,
      unsupportedReason: null,
      idle: { state: { status: 'open', tcpState: 'ESTABLISHED', source: 'kernel' }, verdict: { reason: 'idle' }, tcpInfo: { state: 'ESTABLISHED' } },
      peerClosedSameTick: { nodeSaysOpen: 'open', state: { status: 'peerClosed', tcpState: 'CLOSE_WAIT', source: 'kernel' } },
      unreadThenFin: { after: { state: { status: 'peerClosed', unreadBytes: 5, source: 'kernel' }, verdict: { reason: 'dataPending' } } },
      agent: { second: { status: 200, reused: false }, third: { status: 200, reused: true }, staleSocketsDestroyed: 1 },
    });
    // The control: Node's own keep-alive Agent. Bun's hands the request the
    // dead pooled socket (so does Node 20's; Node 22 and later's do not);
    // sockstate's Agent, above and below, evicts it under both.
    expect((underBun.json.stockAgent as Record<string, unknown>).second, `Bun ${version}`).toEqual({ error: 'ECONNRESET', reused: true });

    // The difference. A client resets a connection whose 5 bytes the server
    // side has not read (pauseOnConnect). Node does not read a paused
    // socket, so it leaves it be: the kernel says reset, 5 bytes unread.
    // Bun watches it all the same: on the reset it reads the 5 bytes into
    // the stream's buffer, emits ECONNRESET and destroys the socket, so
    // sockstate answers from Node's flags, and the fd is gone.
    expect((node.json.unreadThenReset as Record<string, unknown>).after).toEqual({
      state: { status: 'reset', tcpState: 'CLOSE', readClosed: true, unreadBytes: 5, source: 'kernel' },
      verdict: { reusable: false, reason: 'dataPending', isReusable: false },
      takeSocketError: 'ERR_SOCKSTATE_UNREAD_DATA',
      destroyed: false,
      buffered: 0,
    });
    const bunReset = { ...(underBun.json.unreadThenReset as Record<string, unknown>) };
    expect(bunReset.after, `Bun ${version}`).toEqual({
      state: { status: 'closed', tcpState: null, readClosed: true, unreadBytes: 5, source: 'flags' },
      verdict: { reusable: false, reason: 'dataPending', isReusable: false },
      takeSocketError: 'ERR_SOCKSTATE_NO_FD',
      destroyed: true,
      buffered: 5,
    });

    // Everything else alike, sockstate's Agent included.
    const same = (json: Record<string, unknown>) => ({
      ...json,
      unreadThenReset: { ...(json.unreadThenReset as object), after: '(compared above)' },
      stockAgent: '(not sockstate)',
    });
    expect(same(underBun.json), `Bun ${version}`).toEqual(same(node.json));
  }, 60_000);
});
