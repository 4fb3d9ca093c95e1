import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// The README's metrics examples, run as users run them: the README quotes
// their output, so it must stay true.
const run = promisify(execFile);
const root = path.join(__dirname, '..');

describe('examples/metrics-server.js', () => {
  it('prints the counts by status, byte counters and RTT count the README quotes', async () => {
    const { stdout } = await run(process.execPath, [path.join('examples', 'metrics-server.js')], { cwd: root, timeout: 15_000 });
    expect(stdout.trimEnd().split('\n')).toEqual([
      'sockstate_connections{role="server",scope="echo",status="open"} 2',
      'sockstate_connections{role="server",scope="echo",status="peerClosed"} 1',
      'sockstate_tcp_bytes_sent_total{role="server",scope="echo"} 18',
      'sockstate_tcp_bytes_received_total{role="server",scope="echo"} 18',
      'sockstate_tcp_rtt_seconds_count{role="server",scope="echo"} 3',
    ]);
  });
});

describe('examples/otel.js', () => {
  // Two requests of 65 bytes acknowledged and two responses of 128
  // received on one connection, reused once; one collection, so one RTT.
  it('prints the counts, byte counters, RTT count and reuse checks of one collection', async () => {
    const { stdout } = await run(process.execPath, [path.join('examples', 'otel.js')], { cwd: root, timeout: 15_000 });
    expect(stdout.trimEnd().split('\n')).toEqual([
      'sockstate.connection.count client upstream open 1',
      'sockstate.tcp.rtt client upstream count=1',
      'sockstate.tcp.io client upstream transmit 130',
      'sockstate.tcp.io client upstream receive 256',
      'sockstate.reuse_check.count upstream idle 1',
    ]);
  });
});
