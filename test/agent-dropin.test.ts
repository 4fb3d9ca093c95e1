import * as diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent, HttpsAgent } from '../src/agent';
import { CONNECTION_CHANNEL, type ConnectionMessage } from '../src/channel';
import { settle } from './helpers/http-agent';
import { listen } from './helpers/sockets';
import { makeCertificate } from './helpers/tls';

// Drop-in means drop-in: the ways Node's own code and tests (and proxy
// libraries, agent subclasses) use an agent, each with Node's stock agent
// next to sockstate's, on loopback servers (127.0.0.2 is loopback too on
// Linux, and a server there only is refused on 127.0.0.1).

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function track<T extends http.Agent>(agent: T): T {
  cleanups.push(() => agent.destroy());
  return agent;
}

let tlsKey: Buffer;
let tlsCert: Buffer;
beforeAll(() => {
  ({ key: tlsKey, cert: tlsCert } = makeCertificate());
});

describe('createConnection() takes every argument form Node takes', () => {
  it('HttpsAgent: (port, host, options) and (port, options) connect to that host with those TLS options', async () => {
    const server = https.createServer({ key: tlsKey, cert: tlsCert }, (_req, res) => res.end('x'));
    const port = await listen(server, '127.0.0.2');
    cleanups.push(() => {
      server.closeAllConnections();
      server.close();
    });
    const tlsOptions = { ca: tlsCert, servername: 'localhost' };
    const seen: Record<string, unknown[]> = {};
    for (const [label, agent] of [['stock', track(new https.Agent())], ['sockstate', track(new HttpsAgent())]] as const) {
      const create = agent.createConnection as (...args: unknown[]) => tls.TLSSocket;
      for (const socket of [create.call(agent, port, '127.0.0.2', tlsOptions), create.call(agent, port, { host: '127.0.0.2', ...tlsOptions })]) {
        await once(socket, 'secureConnect');
        (seen[label] ??= []).push({ remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, authorized: socket.authorized });
        socket.destroy();
      }
    }
    const expected = { remoteAddress: '127.0.0.2', remotePort: port, authorized: true };
    expect(seen.stock).toEqual([expected, expected]);
    expect(seen.sockstate).toEqual(seen.stock);
  });

  it('Agent: (port, host, cb) and (port, host) connect to that host; cb is the connect listener, called once with no arguments', async () => {
    const server = net.createServer((s) => s.end());
    const port = await listen(server, '127.0.0.2');
    cleanups.push(() => server.close());
    const seen: Record<string, unknown[]> = {};
    for (const [label, agent] of [['stock', track(new http.Agent())], ['sockstate', track(new Agent())]] as const) {
      const create = agent.createConnection as (...args: unknown[]) => net.Socket;
      const calls: unknown[][] = [];
      const withCallback = create.call(agent, port, '127.0.0.2', (...args: unknown[]) => calls.push(args));
      const withoutCallback = create.call(agent, port, '127.0.0.2');
      await Promise.all([once(withCallback, 'connect'), once(withoutCallback, 'connect')]);
      await settle();
      seen[label] = [withCallback.remoteAddress, withoutCallback.remoteAddress, calls];
      withCallback.destroy();
      withoutCallback.destroy();
    }
    expect(seen.stock).toEqual(['127.0.0.2', '127.0.0.2', [[]]]);
    expect(seen.sockstate).toEqual(seen.stock);
  });

  it('each form is announced on sockstate:connection once, with the agent as owner', async () => {
    const server = net.createServer((s) => s.end());
    const port = await listen(server, '127.0.0.2');
    cleanups.push(() => server.close());
    const messages: ConnectionMessage[] = [];
    const listener = (m: unknown): void => void messages.push(m as ConnectionMessage);
    diagnostics.subscribe(CONNECTION_CHANNEL, listener);
    cleanups.push(() => diagnostics.unsubscribe(CONNECTION_CHANNEL, listener));
    const agent = track(new Agent());
    const create = agent.createConnection as (...args: unknown[]) => net.Socket;
    const sockets = [
      create.call(agent, { port, host: '127.0.0.2' }, () => {}),
      create.call(agent, port, '127.0.0.2', () => {}),
      create.call(agent, port, '127.0.0.2'),
    ];
    await Promise.all(sockets.map((s) => once(s, 'connect')));
    expect(messages).toEqual(sockets.map((socket) => ({ owner: agent, socket })));
    for (const s of sockets) s.destroy();
  });
});
