import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterEach } from 'vitest';

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Blocks the event loop for `ms` milliseconds, as a busy process would. */
export function busyWait(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin
  }
}

/** Polls `check` every 5 ms until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Starts a TCP server on `host`, port 0. */
export async function listen(server: net.Server, host = '127.0.0.1'): Promise<number> {
  server.listen(0, host);
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** A connected loopback pair: our client socket and the server's side of it. */
export interface Pair {
  client: net.Socket;
  peer: net.Socket;
  server: net.Server;
  close(): void;
}

/** Connects a client to a fresh loopback server; both ends allow half-open. */
export async function connectPair(host = '127.0.0.1'): Promise<Pair> {
  const server = net.createServer({ allowHalfOpen: true });
  const port = await listen(server, host);
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect({ port, host, allowHalfOpen: true });
  client.on('error', () => {});
  await once(client, 'connect');
  const [peer] = await accepted;
  peer.on('error', () => {});
  return {
    client,
    peer,
    server,
    close() {
      client.destroy();
      peer.destroy();
      server.close();
    },
  };
}

/**
 * Per-test clean-up for the calling file (call at module level): functions
 * pushed to `cleanups` run, last first, after each test, and `pair()` is a
 * connectPair() whose sockets are closed then.
 */
export function perTestCleanup(): { cleanups: (() => void)[]; pair(host?: string): Promise<Pair> } {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    while (cleanups.length) cleanups.pop()!();
  });
  return {
    cleanups,
    async pair(host?: string) {
      const p = await connectPair(host);
      cleanups.push(() => p.close());
      return p;
    },
  };
}

/** Directory of the test fixtures (peer programs run as child processes). */
export const fixtures = path.join(__dirname, '..', 'fixtures');

/** Runs a fixture script with node; resolves once it prints its first line. */
export async function spawnFixture(script: string, args: string[] = []): Promise<{ child: ChildProcess; firstLine: string }> {
  const child = spawn(process.execPath, [path.join(fixtures, script), ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const firstLine = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl >= 0) resolve(buffered.slice(0, nl));
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code} before it was ready`)));
    child.once('error', reject);
  });
  return { child, firstLine };
}
