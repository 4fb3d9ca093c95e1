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


// Agent fields Node keeps but @types/node does not declare.
interface AgentFields {
  keepAlive: boolean;
  options: http.AgentOptions;
  freeSockets: Record<string, net.Socket[]>;
}
const fields = (agent: http.Agent): AgentFields => agent as unknown as AgentFields;

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

// A server that counts its open connections and records each request's
// Connection header.
interface CountingServer {
  port: number;
  open: number;
  opened: number;
  connectionHeaders: (string | undefined)[];
}
async function countingServer(secure = false, host = '127.0.0.1'): Promise<CountingServer> {
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    state.connectionHeaders.push(req.headers.connection);
    res.end('x');
  };
  const server = secure ? https.createServer({ key: tlsKey, cert: tlsCert }, handler) : http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  const state: CountingServer = { port: 0, open: 0, opened: 0, connectionHeaders: [] };
  server.on('connection', (socket: net.Socket) => {
    state.open += 1;
    state.opened += 1;
    socket.on('close', () => (state.open -= 1));
  });
  state.port = await listen(server, host);
  cleanups.push(() => {
    server.closeAllConnections();
    server.close();
  });
  return state;
}

function get(options: https.RequestOptions, client: typeof http | typeof https = http): Promise<{ req: http.ClientRequest; status: number | undefined }> {
  return new Promise((resolve, reject) => {
    const req = client.get({ path: '/', ...options }, (res) => {
      res.resume().on('end', () => resolve({ req, status: res.statusCode }));
    });
    req.on('error', reject);
  });
}

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

describe('Agent and HttpsAgent can be called without new, as Node’s can', () => {
  it('return a guarded agent of the class, whose constructor is the export', () => {
    const a = track(Agent({ keepAlive: true, maxSockets: 2 }));
    expect(a).toBeInstanceOf(Agent);
    expect(a).toBeInstanceOf(http.Agent);
    expect(a.constructor).toBe(Agent);
    expect([fields(a).keepAlive, a.maxSockets, a.staleSocketsDestroyed]).toEqual([true, 2, 0]);
    const h = track(HttpsAgent());
    expect(h).toBeInstanceOf(HttpsAgent);
    expect(h).toBeInstanceOf(https.Agent);
    expect(h.constructor).toBe(HttpsAgent);
    expect([fields(h).keepAlive, h.staleSocketsDestroyed]).toEqual([true, 0]);
    // Stock, for comparison: the same calls work.
    expect((http.Agent as unknown as (o: http.AgentOptions) => http.Agent)({ keepAlive: true })).toBeInstanceOf(http.Agent);
    // Subclasses are classes as before.
    class Sub extends Agent {}
    const sub = track(new Sub());
    expect(sub).toBeInstanceOf(Agent);
    expect(sub.constructor).toBe(Sub);
  });

  it('a subclass compiled to ES5 (`Base.call(this, options) || this`) gets an agent with its own prototype', () => {
    type Legacy = http.Agent & { kind(): string };
    const legacy = (Base: typeof http.Agent): new (options?: http.AgentOptions) => Legacy => {
      function Sub(this: unknown, options?: http.AgentOptions): unknown {
        return (Base as unknown as (this: unknown, o?: http.AgentOptions) => unknown).call(this, options) || this;
      }
      Object.setPrototypeOf(Sub.prototype, Base.prototype);
      Object.setPrototypeOf(Sub, Base);
      Sub.prototype.kind = () => 'legacy';
      return Sub as unknown as new (options?: http.AgentOptions) => Legacy;
    };
    const seen: Record<string, unknown> = {};
    for (const [label, Base] of [['stock', http.Agent], ['sockstate', Agent]] as const) {
      const Sub = legacy(Base);
      const agent = track(new Sub({ maxSockets: 3 }));
      seen[label] = { sub: agent instanceof Sub, base: agent instanceof Base, kind: agent.kind(), maxSockets: agent.maxSockets };
    }
    expect(seen.stock).toEqual({ sub: true, base: true, kind: 'legacy', maxSockets: 3 });
    expect(seen.sockstate).toEqual(seen.stock);
  });

  it('an agent made by a call keeps its socket alive and reuses it', async () => {
    const server = await countingServer();
    const agent = track(Agent({ keepAlive: true }));
    const first = await get({ host: '127.0.0.1', port: server.port, agent });
    await settle();
    const second = await get({ host: '127.0.0.1', port: server.port, agent });
    expect([first.req.reusedSocket, second.req.reusedSocket]).toEqual([false, true]);
    expect(server.opened).toBe(1);
  });
});
