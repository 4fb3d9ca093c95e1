import * as diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import * as http from 'node:http';
import * as https from 'node:https';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent, HttpsAgent } from '../src/integrations/agent';
import { CONNECTION_CHANNEL, type ConnectionMessage } from '../src/policy/channel';
import { settle } from './helpers/http-agent';
import { listen, waitFor } from './helpers/sockets';
import { makeCertificate } from './helpers/tls';

// Drop-in means drop-in: the ways Node's own code and tests (and proxy
// libraries, agent subclasses) use an agent, each with Node's stock agent
// next to sockstate's, on loopback servers (127.0.0.2 is loopback too on
// Linux, and a server there only is refused on 127.0.0.1).

// The modules themselves: the namespace objects of the imports above
// cannot be assigned to.
const modules = { http: createRequire(import.meta.url)('node:http') as typeof http, https: createRequire(import.meta.url)('node:https') as typeof https };

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

describe('agent: false with our agent as the global agent: one connection, closed after use', () => {
  // Three requests with `agent: false` in turn, then the server's count of
  // connections still open once the client has had time to close them.
  async function agentFalse(server: CountingServer, client: typeof http | typeof https, extra: https.RequestOptions = {}): Promise<{ opened: number; open: number; headers: (string | undefined)[] }> {
    for (let i = 0; i < 3; i++) await get({ host: '127.0.0.1', port: server.port, agent: false, ...extra }, client);
    await waitFor(() => server.open === 0, 1000, 'the connections to close').catch(() => {});
    return { opened: server.opened, open: server.open, headers: server.connectionHeaders };
  }

  function swapGlobal(client: typeof http | typeof https, agent: http.Agent): void {
    const module = modules[client === https ? 'https' : 'http'];
    const before = module.globalAgent;
    module.globalAgent = agent;
    cleanups.push(() => {
      module.globalAgent = before;
    });
  }

  it('http: stock and Agent alike send Connection: close and leave no connection open', async () => {
    const runs: Record<string, unknown> = {};
    for (const [label, global] of [['stock', track(new http.Agent({ keepAlive: true }))], ['sockstate', track(new Agent())]] as const) {
      swapGlobal(http, global);
      runs[label] = await agentFalse(await countingServer(), http);
      // The global agent itself is as it was.
      expect(fields(global).keepAlive).toBe(true);
    }
    expect(runs.stock).toEqual({ opened: 3, open: 0, headers: ['close', 'close', 'close'] });
    expect(runs.sockstate).toEqual(runs.stock);
  });

  it('https: the same with HttpsAgent as https.globalAgent', async () => {
    const runs: Record<string, unknown> = {};
    for (const [label, global] of [['stock', track(new https.Agent({ keepAlive: true }))], ['sockstate', track(new HttpsAgent())]] as const) {
      swapGlobal(https, global);
      runs[label] = await agentFalse(await countingServer(true), https, { ca: tlsCert, servername: 'localhost' });
    }
    expect(runs.stock).toEqual({ opened: 3, open: 0, headers: ['close', 'close', 'close'] });
    expect(runs.sockstate).toEqual(runs.stock);
  });

  it('a subclass with a finite maxSockets as the global agent: keep-alive said, as Node says it, and the connection closed all the same', async () => {
    class StockSub extends http.Agent {
      constructor(options?: http.AgentOptions) {
        super({ maxSockets: 8, ...options });
      }
    }
    class OurSub extends Agent {
      constructor(options?: http.AgentOptions) {
        super({ maxSockets: 8, ...options });
      }
    }
    const runs: Record<string, unknown> = {};
    for (const [label, global] of [['stock', track(new StockSub({ keepAlive: true }))], ['sockstate', track(new OurSub())]] as const) {
      swapGlobal(http, global);
      runs[label] = await agentFalse(await countingServer(), http);
    }
    expect(runs.stock).toEqual({ opened: 3, open: 0, headers: ['keep-alive', 'keep-alive', 'keep-alive'] });
    expect(runs.sockstate).toEqual(runs.stock);
  });

  it('headers given as an array: rendered before the agent sees the request, they say keep-alive, but the connection is closed', async () => {
    const runs: Record<string, unknown> = {};
    for (const [label, global] of [['stock', track(new http.Agent({ keepAlive: true }))], ['sockstate', track(new Agent())]] as const) {
      swapGlobal(http, global);
      const server = await countingServer();
      runs[label] = await agentFalse(server, http, { headers: ['Host', `127.0.0.1:${server.port}`] as unknown as http.OutgoingHttpHeaders });
    }
    expect(runs.stock).toEqual({ opened: 3, open: 0, headers: ['close', 'close', 'close'] });
    expect(runs.sockstate).toEqual({ opened: 3, open: 0, headers: ['keep-alive', 'keep-alive', 'keep-alive'] });
  });

  it('a request through the global agent itself is still kept alive', async () => {
    const global = track(new Agent());
    swapGlobal(http, global);
    const server = await countingServer();
    await get({ host: '127.0.0.1', port: server.port, agent: false });
    const pooled = await get({ host: '127.0.0.1', port: server.port });
    await settle();
    expect((pooled.req as http.ClientRequest & { agent: http.Agent }).agent).toBe(global);
    expect(server.connectionHeaders).toEqual(['close', 'keep-alive']);
    expect(Object.values(fields(global).freeSockets).flat()).toHaveLength(1);
  });
});

describe('options as Node reads them', () => {
  it('keepAlive named as undefined means false, as in Node; agent.options keeps what was given', () => {
    const cases: (http.AgentOptions | undefined)[] = [undefined, {}, { keepAlive: undefined }, { keepAlive: false }, { keepAlive: true, maxSockets: 3 }, { timeout: 100 }];
    for (const options of cases) {
      const stock = track(new http.Agent(options));
      const ours = track(new Agent(options));
      const named = options !== undefined && 'keepAlive' in options;
      expect({ keepAlive: fields(ours).keepAlive, options: { ...fields(ours).options } }).toEqual({
        keepAlive: named ? fields(stock).keepAlive : true,
        options: { ...fields(stock).options },
      });
      const oursHttps = track(new HttpsAgent(options));
      expect({ ...fields(oursHttps).options }).toEqual({ ...fields(track(new https.Agent(options))).options });
    }
    expect(fields(track(new Agent({ keepAlive: undefined }))).keepAlive).toBe(false);
    expect('keepAlive' in fields(track(new Agent())).options).toBe(false);
  });

  it('keepAlive: undefined: the request says close and its connection is closed', async () => {
    const server = await countingServer();
    const agent = track(new Agent({ keepAlive: undefined }));
    await get({ host: '127.0.0.1', port: server.port, agent });
    await waitFor(() => server.open === 0, 1000, 'the connection to close').catch(() => {});
    expect({ open: server.open, headers: server.connectionHeaders }).toEqual({ open: 0, headers: ['close'] });
  });

  it('Agent.defaultMaxSockets, when assigned, is every new agent’s maxSockets unless the options give one', async () => {
    const nodeDefault = (http.Agent as unknown as { defaultMaxSockets: number }).defaultMaxSockets;
    expect([Agent.defaultMaxSockets, nodeDefault]).toEqual([Infinity, Infinity]);
    Agent.defaultMaxSockets = 1;
    cleanups.push(() => delete (Agent as { defaultMaxSockets?: number }).defaultMaxSockets);
    // Ours only: Node's stays as it was.
    expect((http.Agent as unknown as { defaultMaxSockets: number }).defaultMaxSockets).toBe(Infinity);
    const agent = track(new Agent());
    expect([agent.maxSockets, track(new HttpsAgent()).maxSockets, track(new Agent({ maxSockets: 4 })).maxSockets]).toEqual([1, 1, 4]);
    const server = await countingServer();
    await Promise.all([0, 1, 2].map(() => get({ host: '127.0.0.1', port: server.port, agent })));
    expect(server.opened).toBe(1);
  });
});

describe('a socket put in the free pool that never connected is Node’s to judge', () => {
  it('is handed to the request as by the stock agent, not destroyed', async () => {
    const server = await countingServer();
    const seen: Record<string, unknown> = {};
    for (const [label, agent] of [['stock', track(new http.Agent({ keepAlive: true }))], ['sockstate', track(new Agent())]] as const) {
      const fake = new net.Socket();
      fields(agent).freeSockets[agent.getName({ host: '127.0.0.1', port: server.port })] = [fake];
      const req = http.request({ host: '127.0.0.1', port: server.port, agent });
      req.on('error', () => {});
      const [socket] = (await once(req, 'socket')) as [net.Socket];
      seen[label] = { same: socket === fake, destroyed: fake.destroyed, reused: req.reusedSocket };
      if (agent instanceof Agent) expect(agent.staleSocketsDestroyed).toBe(0);
      req.destroy();
    }
    expect(seen.stock).toEqual({ same: true, destroyed: false, reused: true });
    expect(seen.sockstate).toEqual(seen.stock);
  });
});

describe('a request keeps the shape Node gives it', () => {
  it('one on a reused socket (watched for isReplaySafe) has the same own properties as one on a new connection', async () => {
    const server = http.createServer((_req, res) => res.end('ok'));
    const port = await listen(server);
    const agent = new Agent({ maxSockets: 1 });
    const send = (): Promise<http.ClientRequest> =>
      new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, agent }, (res) => {
          res.resume();
          res.on('end', () => setImmediate(() => resolve(req)));
        });
        req.on('error', reject);
      });
    try {
      const fresh = await send();
      const reused = await send();
      expect(reused.reusedSocket).toBe(true);
      expect(fresh.reusedSocket).toBe(false);
      expect(Reflect.ownKeys(reused).map(String).sort()).toEqual(Reflect.ownKeys(fresh).map(String).sort());
    } finally {
      agent.destroy();
      server.close();
    }
  });
});
