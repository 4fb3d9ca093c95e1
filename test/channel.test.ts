import * as diagnostics from 'node:diagnostics_channel';
import * as http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent, CONNECTION_CHANNEL, type ConnectionMessage, REUSE_CHECK_CHANNEL, type ReuseCheckMessage } from '../src/index';
import { listen } from './helpers/sockets';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

function get(agent: Agent, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      })
      .on('error', reject);
  });
}

describe('the diagnostics channels, by the names the core exports', () => {
  it('carry a guard\'s connections and reuse checks with the guard as owner', async () => {
    expect(REUSE_CHECK_CHANNEL).toBe('sockstate:reuse-check');
    expect(CONNECTION_CHANNEL).toBe('sockstate:connection');
    const checks: ReuseCheckMessage[] = [];
    const connections: ConnectionMessage[] = [];
    const onCheck = (m: unknown) => checks.push(m as ReuseCheckMessage);
    const onConnection = (m: unknown) => connections.push(m as ConnectionMessage);
    diagnostics.subscribe(REUSE_CHECK_CHANNEL, onCheck);
    diagnostics.subscribe(CONNECTION_CHANNEL, onConnection);
    cleanups.push(() => diagnostics.unsubscribe(REUSE_CHECK_CHANNEL, onCheck));
    cleanups.push(() => diagnostics.unsubscribe(CONNECTION_CHANNEL, onConnection));

    const server = http.createServer((_req, res) => res.end('ok'));
    const port = await listen(server);
    const agent = new Agent();
    cleanups.push(() => {
      agent.destroy();
      server.close();
    });
    for (let i = 0; i < 3; i++) await get(agent, port);

    // One connection, reused twice: two checks, both idle.
    expect(connections).toHaveLength(1);
    expect(connections[0]!.owner).toBe(agent);
    expect(checks).toEqual([
      { owner: agent, reusable: true, reason: 'idle' },
      { owner: agent, reusable: true, reason: 'idle' },
    ]);
  });
});
