import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { connectionState, takeSocketError } from '../src/index';
import { fixtures, perTestCleanup, waitFor } from './helpers/sockets';

// A soft error: an ICMP "host unreachable" about a connection that still
// works. The kernel keeps it apart from hard errors (no POLLERR) and hands
// it out through SO_ERROR only when nothing harder is pending. Forging the
// ICMP takes raw sockets, so root.

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const { cleanups, pair } = perTestCleanup();

if (!isRoot) {
  it.skip('needs root to forge an ICMP error (raw sockets): the soft-error test is skipped', () => {});
}

describe.runIf(isRoot)('a soft error on a live connection', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-icmp-'));
  const helper = path.join(dir, 'icmp-unreach');
  execFileSync('cc', ['-O2', '-o', helper, path.join(fixtures, 'icmp-unreach.c')]);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is not a pending error; takeSocketError returns it and leaves the socket working', async () => {
    const { client, peer } = await pair();
    const child = spawn(helper, ['127.0.0.1', String(client.localPort), '127.0.0.1', String(client.remotePort)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(() => child.kill('SIGKILL'));
    const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    expect((await lines.next()).value).toBe('ready');
    let received = '';
    peer.on('data', (d: Buffer) => peer.write(d));
    client.on('data', (d: Buffer) => (received += d.toString()));
    client.write('x');
    expect((await lines.next()).value).toBe('sent');

    expect(connectionState(client)).toMatchObject({ status: 'open', tcpState: 'ESTABLISHED', pendingError: false });
    const err = takeSocketError(client);
    expect(err).toMatchObject({ code: 'EHOSTUNREACH', syscall: 'getsockopt' });
    expect(client.destroyed).toBe(false);
    expect(takeSocketError(client)).toBeNull();

    // The connection still carries data both ways.
    client.write('ping');
    await waitFor(() => received === 'xping', 5000, 'the echo');
    expect(received).toBe('xping');
  });
});
