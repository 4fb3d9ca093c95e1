import { execFileSync } from 'node:child_process';
import * as net from 'node:net';
import { describe, expect, it } from 'vitest';
import { SockstateError, supported, tcpInfo } from '../src/index';
import { native } from '../src/probe/native';
import { createTcpInfoDecoder } from '../src/probe/tcp-info';
import { listen, perTestCleanup } from './helpers/sockets';

const { pair } = perTestCleanup();

/** `ss -tin` for the one established connection whose local port is `port`. */
function ssInfo(port: number): Record<string, string> {
  const out = execFileSync('ss', ['-tinH', 'state', 'established', 'src', `127.0.0.1:${port}`]).toString();
  const fields: Record<string, string> = {};
  for (const token of out.split(/\s+/)) {
    const m = /^([a-z_]+):(.+)$/.exec(token);
    if (m) fields[m[1]!] = m[2]!;
  }
  return fields;
}

describe.runIf(supported)('tcpInfo with the native probe', () => {
  it('decodes every field the kernel fills, u64 counters as bigint', async () => {
    const { client } = await pair();
    const info = tcpInfo(client);
    expect(info.state).toBe('ESTABLISHED');
    expect(info.length).toBeGreaterThanOrEqual(104);
    expect(info.length).toBeLessThanOrEqual(native!.tcpInfoLayout.size);
    for (const [name, [, size, end]] of Object.entries(native!.tcpInfoLayout.fields)) {
      const value = (info as unknown as Record<string, unknown>)[name];
      if (info.length < end) {
        expect(value, name).toBeUndefined();
      } else if (name === 'state') {
        expect(typeof value).toBe('string');
      } else {
        expect(typeof value, name).toBe(size === 8 ? 'bigint' : 'number');
      }
    }
  });

  it('agrees with ss -tin for the same idle connection', async () => {
    const { client, peer } = await pair();
    // Traffic both ways, then idle, so the counters hold still.
    peer.on('data', (d: Buffer) => peer.write(d));
    const received = new Promise<void>((resolve) => {
      let n = 0;
      client.on('data', (d: Buffer) => {
        n += d.length;
        if (n >= 100_000) resolve();
      });
    });
    client.write(Buffer.alloc(100_000, 1));
    await received;
    await new Promise((r) => setTimeout(r, 100));

    const info = tcpInfo(client);
    const ss = ssInfo(client.localPort!);
    expect(info.sndCwnd).toBe(Number(ss.cwnd));
    expect(info.sndMss).toBe(Number(ss.mss));
    expect(info.rcvMss).toBe(Number(ss.rcvmss));
    expect(info.advmss).toBe(Number(ss.advmss));
    expect(info.pmtu).toBe(Number(ss.pmtu));
    expect(info.bytesAcked).toBe(BigInt(ss.bytes_acked!));
    expect(info.bytesReceived).toBe(BigInt(ss.bytes_received!));
    expect(info.bytesSent).toBe(BigInt(ss.bytes_sent!));
    expect(info.segsOut).toBe(Number(ss.segs_out));
    expect(info.segsIn).toBe(Number(ss.segs_in));
    expect(`${info.sndWscale},${info.rcvWscale}`).toBe(ss.wscale);
    // ss prints rtt/rttvar and rto in ms with 3 decimals.
    const [rtt, rttvar] = ss.rtt!.split('/').map(Number) as [number, number];
    expect(Math.abs(info.rtt / 1000 - rtt)).toBeLessThanOrEqual(0.001);
    expect(Math.abs(info.rttvar / 1000 - rttvar)).toBeLessThanOrEqual(0.001);
    expect(info.rto / 1000).toBe(Number(ss.rto));
    expect(info.sndWnd).toBe(Number(ss.snd_wnd));
  });

  it('a listening socket: LISTEN, accept queue in unacked', async () => {
    const server = net.createServer();
    await listen(server);
    try {
      const info = tcpInfo(server);
      expect(info.state).toBe('LISTEN');
      expect(info.unacked).toBe(0);
    } finally {
      server.close();
    }
  });

  it('fields past the length the kernel filled are undefined, never zero', () => {
    const decoder = createTcpInfoDecoder(native!.tcpInfoLayout, native!.tcpStates);
    decoder.buffer.fill(0xff);
    decoder.buffer[0] = 1;
    const old = decoder.decode(104);
    expect(old.length).toBe(104);
    expect(old.state).toBe('ESTABLISHED');
    expect(old.totalRetrans).toBe(0xffffffff);
    expect(old.pacingRate).toBeUndefined();
    expect(old.bytesAcked).toBeUndefined();
    expect(old.totalRtoTime).toBeUndefined();
    const v419 = decoder.decode(224);
    expect(v419.bytesRetrans).toBe(0xffffffffffffffffn);
    expect(v419.reordSeen).toBe(0xffffffff);
    expect(v419.rcvOoopack).toBeUndefined();
    expect(() => decoder.decode(100)).toThrow(/filled 100 bytes/);
  });

  it('layout comes from the binding: 280 bytes, the 6.18 field boundaries', () => {
    const f = native!.tcpInfoLayout.fields;
    expect(native!.tcpInfoLayout.size).toBe(280);
    expect(f.totalRetrans![2]).toBe(104);
    expect(f.maxPacingRate![2]).toBe(120);
    expect(f.bytesReceived![2]).toBe(136);
    expect(f.segsIn![2]).toBe(144);
    expect(f.dataSegsOut![2]).toBe(160);
    expect(f.deliveryRate![2]).toBe(168);
    expect(f.sndbufLimited![2]).toBe(192);
    expect(f.deliveredCe![2]).toBe(200);
    expect(f.reordSeen![2]).toBe(224);
    expect(f.sndWnd![2]).toBe(232);
    expect(f.rehash![2]).toBe(240);
    expect(f.totalRtoTime![2]).toBe(248);
    expect(f.receivedCeBytes![2]).toBe(276);
  });
});

describe('tcpInfo errors', () => {
  it('a destroyed socket: ERR_SOCKSTATE_NO_FD (or ERR_SOCKSTATE_UNSUPPORTED without the addon)', async () => {
    const { client } = await pair();
    client.destroy();
    expect(() => tcpInfo(client)).toThrow(
      expect.objectContaining({ code: supported ? 'ERR_SOCKSTATE_NO_FD' : 'ERR_SOCKSTATE_UNSUPPORTED' }),
    );
  });

  it('without the addon every call is ERR_SOCKSTATE_UNSUPPORTED; with it, a live socket answers', async () => {
    const { client } = await pair();
    if (supported) {
      expect(tcpInfo(client).state).toBe('ESTABLISHED');
    } else {
      let caught: unknown;
      try {
        tcpInfo(client);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(SockstateError);
      expect(caught).toMatchObject({ code: 'ERR_SOCKSTATE_UNSUPPORTED', errno: undefined, syscall: undefined });
    }
  });
});
