import * as diagnostics from 'node:diagnostics_channel';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as undici from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { connectionState } from '../src/index';
import { CONNECTION_CHANNEL, type ConnectionMessage, REUSE_CHECK_CHANNEL, type ReuseCheckMessage } from '../src/policy/channel';
import { Agent, BalancedPool, Client, EnvHttpProxyAgent, Pool, ProxyAgent, RoundRobinPool } from '../src/integrations/undici';
import { guardUndici, type UndiciModule } from '../src/integrations/undici/guard';
import { spinUntilPeerClosed } from './helpers/http-agent';
import { listen } from './helpers/sockets';
import { makeCertificate } from './helpers/tls';

// sockstate/undici as a drop-in for undici's own classes (issue 17): the
// shape undici's users and undici's own tests rely on, and every dispatcher
// that keeps connections alive guarded, each on real loopback servers.
//
// The race: after a response, the server (or the proxy) closes the idle
// connection and the test blocks until the FIN is in our kernel, unseen by
// Node, then sends the next request in the same synchronous stretch. A
// guarded dispatcher finds that socket dead before writing on it and sends
// the request on a fresh connection: it never fails.

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startProxy } = require('./fixtures/undici-proxy.js') as {
  startProxy(): Promise<{ port: number; tunnels: number; forwarded: number; clients: net.Socket[]; close(): void }>;
};

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

interface Upstream {
  origin: string;
  /** The server's side of every connection, open or not. */
  sockets: net.Socket[];
}

// An HTTP/1.1 server that keeps connections alive and answers `name path`.
async function upstream(name: string): Promise<Upstream> {
  const server = http.createServer((req, res) => res.end(`${name} ${req.url}`));
  server.keepAliveTimeout = 60_000;
  const sockets: net.Socket[] = [];
  server.on('connection', (s: net.Socket) => sockets.push(s));
  const port = await listen(server);
  cleanups.push(() => {
    server.closeAllConnections();
    server.close();
  });
  return { origin: `http://127.0.0.1:${port}`, sockets };
}

type Dispatcher = undici.Dispatcher & { readonly staleSocketsDestroyed: number; readonly replayedRequests: number };

/**
 * What the guard published for one owner (or the one `owner()` names when
 * it publishes): its connections and its verdicts.
 */
function observe(owner: object | (() => object | undefined)): { sockets: net.Socket[]; checks: ReuseCheckMessage[] } {
  const sockets: net.Socket[] = [];
  const checks: ReuseCheckMessage[] = [];
  const mine = (o: object): boolean => o === (typeof owner === 'function' ? owner() : owner);
  const onConnection = (m: unknown): void => {
    const { owner: o, socket } = m as ConnectionMessage;
    if (mine(o) && !sockets.includes(socket as net.Socket)) sockets.push(socket as net.Socket);
  };
  const onCheck = (m: unknown): void => {
    if (mine((m as ReuseCheckMessage).owner)) checks.push(m as ReuseCheckMessage);
  };
  diagnostics.subscribe(CONNECTION_CHANNEL, onConnection);
  diagnostics.subscribe(REUSE_CHECK_CHANNEL, onCheck);
  cleanups.push(() => {
    diagnostics.unsubscribe(CONNECTION_CHANNEL, onConnection);
    diagnostics.unsubscribe(REUSE_CHECK_CHANNEL, onCheck);
  });
  return { sockets, checks };
}

// undici.request dispatches synchronously: nothing runs between the caller
// and the guard's check.
async function get(dispatcher: undici.Dispatcher, url: string): Promise<string> {
  const res = await undici.request(url, { dispatcher });
  const text = await res.body.text();
  return `${res.statusCode} ${text}`;
}

// One loop turn: a Client reports itself free after the body is handed over.
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Closes every connection from the server's side (`closers`), blocks until
 * each FIN is in our kernel, and sends `url` in the same stretch.
 */
async function raced(dispatcher: undici.Dispatcher, url: string, closers: net.Socket[], sockets: net.Socket[]): Promise<string> {
  await settle();
  expect(sockets.filter((s) => !s.destroyed).length).toBeGreaterThan(0);
  for (const s of closers) s.destroy();
  for (const s of sockets) if (!s.destroyed) spinUntilPeerClosed(s);
  return get(dispatcher, url);
}

// The guard's account of one race: the one socket found closed, nothing replayed.
function expectOneEviction(dispatcher: Dispatcher, checks: ReuseCheckMessage[]): void {
  expect(dispatcher.staleSocketsDestroyed).toBe(1);
  expect(dispatcher.replayedRequests).toBe(0);
  expect(checks.filter((c) => !c.reusable)).toEqual([{ owner: dispatcher, reusable: false, reason: 'closed' }]);
}

describe('instanceof', () => {
  // First in the file, so that no Client or Pool was constructed yet: the
  // public classes are wired to undici when any one of them first is.
  it("the Pools and Clients an Agent creates are instances of sockstate's Pool and Client, as in undici", async () => {
    const up = await upstream('a');
    const agent = new Agent();
    cleanups.push(() => agent.close());
    const targets: unknown[][] = [];
    agent.on('connect', (_origin, t) => targets.push([...t]));
    expect(await get(agent, `${up.origin}/1`)).toBe('200 a /1');
    expect(targets).toHaveLength(1);
    const [owner, pool, client] = targets[0]!;
    expect(owner).toBe(agent);
    expect(pool).toBeInstanceOf(Pool);
    expect(Object.getPrototypeOf(pool)).toBe(Pool.prototype);
    expect(client).toBeInstanceOf(Client);
    expect(Object.getPrototypeOf(client)).toBe(Client.prototype);
    expect(client).toBeInstanceOf(undici.Client);
  });

  it("in every guarded pool's 'connect' listener the Client is a sockstate Client", async () => {
    const [a, b] = await Promise.all([upstream('a'), upstream('b')]);
    const single = new Agent({ connections: 1 });
    const pool = new Pool(a.origin);
    const balanced = new BalancedPool([a.origin, b.origin]);
    const roundRobin = new RoundRobinPool(a.origin);
    const all = [single, pool, balanced, roundRobin];
    cleanups.push(() => Promise.all(all.map((d) => d.close())));
    const seen = new Map<object, boolean[]>();
    for (const d of all) {
      seen.set(d, []);
      d.on('connect', (_origin, targets) => seen.get(d)!.push(targets.at(-1) instanceof Client, targets.length === 3 ? targets[1] instanceof Pool : true));
    }
    for (const d of all) expect(await get(d, `${a.origin}/x`)).toMatch(/^200 [ab] \/x$/);
    expect([...seen.values()]).toEqual(all.map(() => [true, true]));
  });

  it("EnvHttpProxyAgent dispatches through sockstate's Agent and ProxyAgent, as undici's through its own", async () => {
    const env = new EnvHttpProxyAgent({ httpProxy: 'http://127.0.0.1:1', noProxy: '' });
    cleanups.push(() => env.close());
    // undici keeps them under these symbols (undici's own tests read them).
    const slot = (description: string): unknown =>
      (env as unknown as Record<symbol, unknown>)[Object.getOwnPropertySymbols(env).find((sym) => sym.description === description)!];
    expect(slot('no proxy agent')).toBeInstanceOf(Agent);
    expect(slot('no proxy agent')).not.toBeInstanceOf(ProxyAgent);
    expect(slot('http proxy agent')).toBeInstanceOf(ProxyAgent);
    expect(slot('https proxy agent')).toBe(slot('http proxy agent'));
  });
});

describe('factory', () => {
  it("a factory that is not a function is refused as undici refuses it: InvalidArgumentError, 'UND_ERR_INVALID_ARG'", () => {
    const make = [
      () => new Agent({ factory: 'x' as never }),
      () => new Pool('http://127.0.0.1:1', { factory: 'x' as never }),
      () => new BalancedPool('http://127.0.0.1:1', { factory: 'x' as never }),
      () => new RoundRobinPool('http://127.0.0.1:1', { factory: 'x' as never }),
      () => new ProxyAgent({ uri: 'http://127.0.0.1:1', clientFactory: 'x' as never }),
    ];
    const errors = make.map((f) => {
      try {
        f();
        return null;
      } catch (err) {
        return [err instanceof undici.errors.InvalidArgumentError, (err as { code?: string }).code, (err as Error).message];
      }
    });
    expect(errors).toEqual([
      [true, 'UND_ERR_INVALID_ARG', 'factory must be a function.'],
      [true, 'UND_ERR_INVALID_ARG', 'factory must be a function.'],
      [true, 'UND_ERR_INVALID_ARG', 'factory must be a function.'],
      [true, 'UND_ERR_INVALID_ARG', 'factory must be a function.'],
      [true, 'UND_ERR_INVALID_ARG', 'Proxy opts.clientFactory must be a function.'],
    ]);
  });

  it("a Pool's factory returning undici's own Client: called as undici calls it, and its connection is guarded", async () => {
    const up = await upstream('a');
    const calls: unknown[][] = [];
    const pool = new Pool(up.origin, {
      pipelining: 1,
      reuse: { allowStalled: true },
      factory: (origin, opts) => {
        calls.push([String(origin), Object.hasOwn(opts, 'reuse'), Object.hasOwn(opts, 'replay'), (opts as { pipelining?: number }).pipelining]);
        return new undici.Client(origin, opts);
      },
    }) as Dispatcher;
    cleanups.push(() => pool.close());
    const { sockets, checks } = observe(pool);
    expect(await get(pool, `${up.origin}/1`)).toBe('200 a /1');
    expect(await raced(pool, `${up.origin}/2`, up.sockets, sockets)).toBe('200 a /2');
    // undici's Pool may make a Client more than it uses, stock or not.
    expect(calls.length).toBeGreaterThan(0);
    expect(calls).toEqual(calls.map(() => [`${up.origin}/`, false, false, 1]));
    expect(sockets).toHaveLength(2);
    expectOneEviction(pool, checks);
  });

  it("an Agent's factory returning undici's own Pool: the Clients that Pool connects are guarded", async () => {
    const up = await upstream('a');
    const agent = new Agent({ factory: (origin, opts) => new undici.Pool(origin, opts) }) as Dispatcher;
    cleanups.push(() => agent.close());
    const { sockets, checks } = observe(agent);
    expect(await get(agent, `${up.origin}/1`)).toBe('200 a /1');
    expect(await raced(agent, `${up.origin}/2`, up.sockets, sockets)).toBe('200 a /2');
    expect(sockets).toHaveLength(2);
    expectOneEviction(agent, checks);
  });

  it("a sockstate Pool made in an Agent's factory counts in the Agent, unless it has rules of its own", async () => {
    const up = await upstream('a');
    let inner: Pool | undefined;
    const joined = new Agent({ factory: (origin, opts) => (inner = new Pool(origin, opts)) });
    cleanups.push(() => joined.close());
    const seen = observe(joined);
    expect(await get(joined, `${up.origin}/1`)).toBe('200 a /1');
    expect(await raced(joined, `${up.origin}/2`, up.sockets, seen.sockets)).toBe('200 a /2');
    expectOneEviction(joined, seen.checks);
    expect(inner!.staleSocketsDestroyed).toBe(1);

    let own: Pool | undefined;
    const separate = new Agent({ factory: (origin, opts) => (own = new Pool(origin, { ...opts, reuse: {} })) });
    cleanups.push(() => separate.close());
    const mine = observe(() => own);
    expect(await get(separate, `${up.origin}/3`)).toBe('200 a /3');
    expect(await raced(separate, `${up.origin}/4`, up.sockets, mine.sockets)).toBe('200 a /4');
    expectOneEviction(own! as Dispatcher, mine.checks);
    expect(separate.staleSocketsDestroyed).toBe(0);
  });

  it('a Client of another copy of undici cannot be guarded: one warning says so, and requests go through', async () => {
    const up = await upstream('a');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const other = require('undici7') as typeof undici;
    const warnings: { code?: string; message: string }[] = [];
    const onWarning = (w: Error & { code?: string }): void => {
      if (w.code === 'ERR_SOCKSTATE_PEER_UNSUPPORTED') warnings.push({ code: w.code, message: w.message });
    };
    process.on('warning', onWarning);
    cleanups.push(() => process.off('warning', onWarning));
    const pool = new Pool(up.origin, { connections: 2, factory: (origin, opts) => new other.Client(origin, opts) as never });
    cleanups.push(() => pool.close());
    expect(await Promise.all([get(pool, `${up.origin}/1`), get(pool, `${up.origin}/2`)])).toEqual(['200 a /1', '200 a /2']);
    await settle();
    expect(warnings).toEqual([
      {
        code: 'ERR_SOCKSTATE_PEER_UNSUPPORTED',
        message: 'sockstate/undici: a factory returned a dispatcher whose Clients are not of the undici sockstate loaded; their connections are not checked',
      },
    ]);
  });
});

describe('every dispatcher that keeps connections alive is guarded', () => {
  it('BalancedPool: the raced request goes out on a fresh connection to its upstream', async () => {
    const [a, b] = await Promise.all([upstream('a'), upstream('b')]);
    const balanced = new BalancedPool([a.origin, b.origin]);
    cleanups.push(() => balanced.close());
    const { sockets, checks } = observe(balanced);
    // Until both upstreams hold a kept-alive connection.
    for (let i = 0; i < 8 && (a.sockets.length === 0 || b.sockets.length === 0); i++) expect(await get(balanced, `${a.origin}/${i}`)).toMatch(/^200 [ab] \/\d$/);
    expect([a.sockets.length, b.sockets.length]).toEqual([1, 1]);
    expect(await raced(balanced, `${a.origin}/raced`, [...a.sockets, ...b.sockets], sockets)).toMatch(/^200 [ab] \/raced$/);
    expect(a.sockets.length + b.sockets.length).toBe(3);
    expectOneEviction(balanced, checks);
  });

  it('RoundRobinPool: the raced request goes out on a fresh connection', async () => {
    const up = await upstream('a');
    const roundRobin = new RoundRobinPool(up.origin, { connections: 1 });
    cleanups.push(() => roundRobin.close());
    const { sockets, checks } = observe(roundRobin);
    expect(await get(roundRobin, `${up.origin}/1`)).toBe('200 a /1');
    expect(await raced(roundRobin, `${up.origin}/2`, up.sockets, sockets)).toBe('200 a /2');
    expect(up.sockets).toHaveLength(2);
    expectOneEviction(roundRobin, checks);
  });

  // The connection kept alive is the one to the proxy: through a CONNECT
  // tunnel (undici's default) or carrying absolute-form requests.
  for (const proxyTunnel of [true, false]) {
    it(`ProxyAgent${proxyTunnel ? ' (CONNECT tunnel)' : ' (proxyTunnel: false)'}: the proxy drops the idle connection, the raced request goes out on a new one`, async () => {
      const up = await upstream('a');
      const proxy = await startProxy();
      cleanups.push(() => proxy.close());
      const agent = new ProxyAgent({ uri: `http://127.0.0.1:${proxy.port}`, proxyTunnel });
      cleanups.push(() => agent.close());
      const { sockets, checks } = observe(agent);
      expect(await get(agent, `${up.origin}/1`)).toBe('200 a /1');
      expect(await raced(agent, `${up.origin}/2`, proxy.clients, sockets)).toBe('200 a /2');
      expect(proxy.clients).toHaveLength(2);
      expect([proxy.tunnels, proxy.forwarded]).toEqual(proxyTunnel ? [2, 0] : [0, 2]);
      expectOneEviction(agent, checks);
    });
  }

  it('ProxyAgent to an HTTPS origin: TLS over the CONNECT tunnel, the proxy drops it, the raced request goes out on a new one', async () => {
    const { key, cert } = makeCertificate();
    const server = https.createServer({ key, cert }, (req, res) => res.end(`tls ${req.url}`));
    server.keepAliveTimeout = 60_000;
    const port = await listen(server);
    cleanups.push(() => {
      server.closeAllConnections();
      server.close();
    });
    const proxy = await startProxy();
    cleanups.push(() => proxy.close());
    const agent = new ProxyAgent({ uri: `http://127.0.0.1:${proxy.port}`, requestTls: { ca: cert, servername: 'localhost' } });
    cleanups.push(() => agent.close());
    const { sockets, checks } = observe(agent);
    const origin = `https://127.0.0.1:${port}`;
    expect(await get(agent, `${origin}/1`)).toBe('200 tls /1');
    // The TLS socket is the one the origin's Client keeps and the guard checks.
    expect(sockets.some((s) => s instanceof tls.TLSSocket)).toBe(true);
    expect(await raced(agent, `${origin}/2`, proxy.clients, sockets)).toBe('200 tls /2');
    expect([proxy.clients.length, proxy.tunnels]).toEqual([2, 2]);
    expectOneEviction(agent, checks);
  });

  it('EnvHttpProxyAgent: the same behind the proxy it takes from its options (as from HTTP_PROXY)', async () => {
    const up = await upstream('a');
    const proxy = await startProxy();
    cleanups.push(() => proxy.close());
    const agent = new EnvHttpProxyAgent({ httpProxy: `http://127.0.0.1:${proxy.port}`, noProxy: '' });
    cleanups.push(() => agent.close());
    const { sockets, checks } = observe(agent);
    expect(await get(agent, `${up.origin}/1`)).toBe('200 a /1');
    expect(await raced(agent, `${up.origin}/2`, proxy.clients, sockets)).toBe('200 a /2');
    expect([proxy.clients.length, proxy.tunnels]).toEqual([2, 2]);
    expect(up.sockets).toHaveLength(2);
    expectOneEviction(agent, checks);
  });
});

// A raw HTTP/1.1 server that keeps connections alive and answers each
// request with the number of the connection it came on (`conn-1`, …).
async function countingServer(onConnection: (socket: net.Socket, n: number) => void = () => {}): Promise<Upstream> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    const n = sockets.length;
    let buffered = '';
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
        buffered = buffered.slice(end + 4);
        const body = `conn-${n}`;
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      }
    });
    onConnection(socket, n);
  });
  const port = await listen(server);
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { origin: `http://127.0.0.1:${port}`, sockets };
}

// An HTTP/1.1 server sends nothing unasked but to say it is going away
// (a 408 before it closes an idle connection): a byte waiting on an idle
// connection means that connection is done, and the guard evicts it as
// `dataPending`. Written before the request, it would be read as that
// request's response.
describe('a server that speaks first', () => {
  const goodbye = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

  function spinUntilUnread(socket: net.Socket): void {
    const deadline = Date.now() + 5000;
    while (connectionState(socket).unreadBytes === 0) {
      if (Date.now() > deadline) throw new Error('the server never spoke');
    }
  }

  it('on an idle kept-alive connection: the connection is evicted as dataPending, the request goes out on a new one', async () => {
    const up = await countingServer();
    const client = new Client(up.origin);
    cleanups.push(() => client.close());
    const { sockets, checks } = observe(client);
    expect(await get(client, `${up.origin}/1`)).toBe('200 conn-1');
    await settle();
    up.sockets[0]!.write(goodbye);
    spinUntilUnread(sockets[0]!);
    expect(await get(client, `${up.origin}/2`)).toBe('200 conn-2');
    expect(client.staleSocketsDestroyed).toBe(1);
    expect(checks.filter((c) => !c.reusable)).toEqual([{ owner: client, reusable: false, reason: 'dataPending' }]);
  });

  it("before any request (undici's client-keep-alive 'connection close'): stock undici reads the 408 as the response, sockstate sends the request on a new connection", async () => {
    const up = await countingServer();
    const results: string[] = [];
    const guarded = new Client(up.origin);
    for (const client of [new undici.Client(up.origin), guarded]) {
      cleanups.push(() => client.close());
      // undici's own test connects through its internal Symbol(connect):
      // a connection that has carried no request.
      const kConnect = Object.getOwnPropertySymbols(undici.Client.prototype).find((sym) => sym.description === 'connect')!;
      const connected = new Promise<net.Socket>((resolve) => {
        const onConnection = (m: unknown): void => {
          diagnostics.unsubscribe('undici:client:connected', onConnection);
          resolve((m as { socket: net.Socket }).socket);
        };
        diagnostics.subscribe('undici:client:connected', onConnection);
      });
      (client as unknown as Record<symbol, (cb: () => void) => void>)[kConnect]!(() => {});
      const socket = await connected;
      await settle();
      up.sockets.at(-1)!.write(goodbye);
      spinUntilUnread(socket);
      results.push(await get(client, `${up.origin}/`));
    }
    // Stock on connection 1; sockstate connected 2, evicted it, sent on 3.
    expect(results).toEqual(['408 ', '200 conn-3']);
    expect(guarded.staleSocketsDestroyed).toBe(1);
  });
});

// The same classes built over each major the package claims.
const [nodeMajor, nodeMinor] = process.versions.node.split('.').map(Number) as [number, number];
const undici8Runs = nodeMajor > 22 || (nodeMajor === 22 && nodeMinor >= 19);

describe.each([
  { pkg: 'undici6', runs: true },
  { pkg: 'undici7', runs: true },
  { pkg: 'undici8', runs: undici8Runs },
])('$pkg', ({ pkg, runs }) => {
  it.runIf(runs)('ProxyAgent, BalancedPool and a Pool with a factory are guarded; RoundRobinPool exists from undici 7 on', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const module = require(pkg) as UndiciModule & typeof undici;
    const guarded = guardUndici(module);
    expect(guarded.RoundRobinPool === undefined).toBe(pkg === 'undici6');
    const up = await upstream('a');
    const proxy = await startProxy();
    cleanups.push(() => proxy.close());
    const dispatchers = [
      new guarded.ProxyAgent!({ uri: `http://127.0.0.1:${proxy.port}` }),
      new guarded.BalancedPool!([up.origin]),
      new guarded.Pool(up.origin, { factory: (origin: string, opts: object) => new module.Client(origin, opts) }),
    ] as unknown as Dispatcher[];
    const results: unknown[] = [];
    for (const d of dispatchers) {
      cleanups.push(() => d.close());
      const { sockets, checks } = observe(d);
      const request = async (path: string): Promise<string> => {
        const res = await d.request({ origin: up.origin, path, method: 'GET' });
        return `${res.statusCode} ${await res.body.text()}`;
      };
      const first = await request('/1');
      await settle();
      for (const s of [...proxy.clients, ...up.sockets]) s.destroy();
      for (const s of sockets) if (!s.destroyed) spinUntilPeerClosed(s);
      const second = await request('/2');
      results.push([first, second, d.staleSocketsDestroyed, checks.filter((c) => !c.reusable).map((c) => c.reason)]);
    }
    expect(results).toEqual(dispatchers.map(() => ['200 a /1', '200 a /2', 1, ['closed']]));
  });
});

describe.runIf(nodeMajor >= 24)(`Node ${process.versions.node}'s fetch under NODE_USE_ENV_PROXY`, () => {
  it("setGlobalDispatcher(new EnvHttpProxyAgent()) puts sockstate's in place of Node's own: fetch goes through it to the proxy", async () => {
    const up = await upstream('a');
    const proxy = await startProxy();
    cleanups.push(() => proxy.close());
    const { execFile } = await import('node:child_process');
    const script = `
      const { setGlobalDispatcher } = require('undici');
      const { EnvHttpProxyAgent } = require('./lib/integrations/undici/index.js');
      const { CONNECTION_CHANNEL } = require('./lib/policy/channel.js');
      const agent = new EnvHttpProxyAgent();
      let announced = 0;
      require('node:diagnostics_channel').subscribe(CONNECTION_CHANNEL, (m) => { if (m.owner === agent) announced += 1; });
      setGlobalDispatcher(agent);
      (async () => {
        const bodies = [];
        for (let i = 1; i <= 2; i++) bodies.push(await (await fetch('${up.origin}/' + i)).text());
        console.log(JSON.stringify({ bodies, stale: agent.staleSocketsDestroyed, announced }));
        await agent.close();
      })();
    `;
    const env = { ...process.env, NODE_USE_ENV_PROXY: '1', HTTP_PROXY: `http://127.0.0.1:${proxy.port}`, NO_PROXY: '' };
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['-e', script], { cwd: `${__dirname}/..`, env, timeout: 20_000 }, (err, out) => (err ? reject(err) : resolve(out)));
    });
    const result = JSON.parse(stdout) as { bodies: string[]; stale: number; announced: number };
    expect(result).toMatchObject({ bodies: ['a /1', 'a /2'], stale: 0 });
    // Every tunnel the proxy opened is a connection sockstate's agent made
    // (the CONNECT itself and the tunnel over it: two announcements each).
    expect(proxy.tunnels).toBeGreaterThanOrEqual(1);
    expect(result.announced).toBe(2 * proxy.tunnels);
  });
});
