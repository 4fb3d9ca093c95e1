import { once } from 'node:events';
import * as net from 'node:net';
import { describe, expect, it } from 'vitest';
import { type WatchEnd, watch } from '../src/probe/watch';
import { listen, perTestCleanup, sleep } from './helpers/sockets';

const { cleanups, pair } = perTestCleanup();

function ends(w: ReturnType<typeof watch>): Promise<WatchEnd> {
  cleanups.push(() => w.stop());
  return new Promise((resolve) => w.once('end', resolve));
}

describe('watch on a server that is not listening', () => {
  it('ends at once with closed for a server closed before the watch', async () => {
    const server = net.createServer();
    await listen(server);
    server.close();
    await once(server, 'close');
    const w = watch(server, { intervalMs: 5 });
    let changes = 0;
    w.on('change', () => changes++);
    const end = await ends(w);
    expect(end).toMatchObject({ reason: 'closed', state: { status: 'closed', source: 'flags' } });
    expect(changes).toBe(0);
    expect(server.listenerCount('close')).toBe(0);
  });

  it("ends once the server closes, before its 'close' (which waits for its connections)", async () => {
    const server = net.createServer();
    const port = await listen(server);
    const client = net.connect({ port, host: '127.0.0.1' });
    cleanups.push(() => client.destroy());
    await once(server, 'connection');
    const w = watch(server, { intervalMs: 5 });
    const ended = ends(w);
    let closeEmitted = false;
    server.close(() => {
      closeEmitted = true;
    });
    expect(await ended).toMatchObject({ reason: 'closed', state: { status: 'closed' } });
    expect(closeEmitted).toBe(false);
  });
});

describe('watch reads only the options the caller owns', () => {
  it('ignores an intervalMs inherited from Object.prototype', async () => {
    const { client } = await pair();
    const proto = Object.prototype as { intervalMs?: unknown };
    try {
      proto.intervalMs = -1;
      // Inherited, so not validated either: the default (1000 ms) applies.
      const w = watch(client);
      let samples = 0;
      w.on('sample', () => samples++);
      proto.intervalMs = 5;
      const w5 = watch(client, {});
      w5.on('sample', () => samples++);
      cleanups.push(() => {
        w.stop();
        w5.stop();
      });
      await sleep(100);
      expect(samples).toBe(0);
    } finally {
      delete proto.intervalMs;
    }
    // An own property is read and checked as before.
    expect(() => watch(client, { intervalMs: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });
});

describe('1,000 watchers on one socket', () => {
  it("share one 'close' listener, warn about nothing, and all end when it closes", async () => {
    const { client } = await pair();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    cleanups.push(() => process.removeListener('warning', onWarning));
    const before = client.listenerCount('close');
    const watchers = Array.from({ length: 1000 }, () => watch(client, { intervalMs: 1000 }));
    const ended = watchers.map((w) => ends(w));
    expect(client.listenerCount('close')).toBe(before + 1);
    // Stopping some leaves the shared listener for the rest.
    for (const w of watchers.slice(0, 10)) w.stop();
    expect(client.listenerCount('close')).toBe(before + 1);
    await sleep(20);
    expect(warnings).toEqual([]);
    client.destroy();
    const reasons = (await Promise.all(ended)).map((e) => e.reason);
    expect(reasons.filter((r) => r === 'stopped')).toHaveLength(10);
    expect(reasons.filter((r) => r === 'closed')).toHaveLength(990);
    expect(watchers.every((w) => !w.active)).toBe(true);
    expect(client.listenerCount('close')).toBe(before);
  });
});
