import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// The examples the README and docs/ quote, run as users run them: the docs
// quote their output, so it must stay true (test/docs.test.ts compares it).
const run = promisify(execFile);
const root = path.join(__dirname, '..');

async function example(name: string): Promise<string[]> {
  const { stdout } = await run(process.execPath, [path.join('examples', name)], { cwd: root, timeout: 15_000 });
  return stdout.trimEnd().split('\n');
}

describe('examples/', () => {
  it('peer-closed.js: the kernel knows before Node does', async () => {
    const out = (await example('peer-closed.js')).join('\n');
    expect(out).toMatch(/^before: open \{ rtt: \d+, sndCwnd: \d+, bytesAcked: 1n \}/);
    expect(out).toContain("Node says: open | sockstate says: {\n  status: 'peerClosed',\n  tcpState: 'CLOSE_WAIT',");
  });

  it('http-agent.js: the stale socket is skipped, not reused', async () => {
    expect(await example('http-agent.js')).toEqual([
      '200, reused socket: false',
      '200, reused socket: false',
      'stale sockets destroyed: 1',
    ]);
  });

  it('pool.js: a goodbye is told from a stale connection', async () => {
    expect(await example('pool.js')).toEqual([
      'echo one',
      'echo two',
      'discarding: the server said "bye: idle timeout\\n" (peerClosed)',
      'echo three',
    ]);
  });

  it('sweep-pool.js: every third connection is evicted', async () => {
    expect(await example('sweep-pool.js')).toEqual([
      '0 open ESTABLISHED',
      '1 open ESTABLISHED',
      '2 peerClosed CLOSE_WAIT',
      '3 open ESTABLISHED',
      '4 open ESTABLISHED',
      '5 peerClosed CLOSE_WAIT',
      'evicting 2 of 6',
    ]);
  });

  it('watch.js: samples, a change, the end', async () => {
    const out = await example('watch.js');
    expect(out[0]).toBe('start open ESTABLISHED');
    // A sample may land in the instant between the peer's FIN and our close.
    const middle = out.slice(1, -2).filter((l) => l !== 'change open -> peerClosed CLOSE_WAIT');
    expect(middle.length).toBeGreaterThanOrEqual(1);
    for (const line of middle) expect(line).toMatch(/^sample rtt \d+ µs, cwnd \d+$/);
    expect(out.at(-2)).toMatch(/^change (open|peerClosed) -> closed null$/);
    expect(out.at(-1)).toBe('end closed closed');
  });

  it('keepalive.js: values read back, a half second refused', async () => {
    expect(await example('keepalive.js')).toEqual([
      '{ enabled: true, idleMs: 10000, intervalMs: 2000, count: 3 } 15000',
      'ERR_OUT_OF_RANGE The value of "options.idleMs" is out of range. It must be a whole number of seconds in ms, >= 1000 and <= 32767000. Received 1500',
    ]);
  });
});
