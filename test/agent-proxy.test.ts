import * as diagnostics from 'node:diagnostics_channel';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent, HttpsAgent } from '../src/integrations/agent';
import { CONNECTION_CHANNEL, type ConnectionMessage } from '../src/policy/channel';
import { getKeepAlive } from '../src/index';
import { type Outcome, request, settle, spinUntilPeerClosed } from './helpers/http-agent';
import { listen } from './helpers/sockets';
import { makeCertificate } from './helpers/tls';

// Both agents behind a forward proxy on loopback, through Node's own proxy
// support (the agent option `proxyEnv`). Node 22.21+ and 24.5+ have it
// (22.23.5, 24.22.3 and 26.12.1 in CI); Node 20 ignores the option and
// connects straight to the server.
//
// HTTPS goes through a CONNECT tunnel: Node's https.Agent createConnection()
// returns the socket to the proxy, marked as waiting for the tunnel, and
// delivers the TLS socket of the tunnel through its callback; only that one
// is pooled, checked and reused, so only that one is announced. Plain HTTP
// sends absolute-form requests over a connection to the proxy itself.
const nodeMajor = Number(process.versions.node.split('.')[0]);
const proxied = nodeMajor >= 22;

// Node's agent option for its proxy support; @types/node does not declare it.
function proxyEnv(env: Record<string, string>): http.AgentOptions {
  return { proxyEnv: env } as http.AgentOptions;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

async function get(agent: http.Agent, client: typeof http | typeof https, port: number, extra: https.RequestOptions = {}): Promise<Outcome & { socket: net.Socket }> {
  const outcome = await request(agent, { host: '127.0.0.1', port, ...extra }, client).done;
  if (!outcome.ok || outcome.status !== 200) throw new Error(`request failed: ${outcome.code ?? outcome.status}`);
  return outcome as Outcome & { socket: net.Socket };
}

function announcements(): ConnectionMessage[] {
  const seen: ConnectionMessage[] = [];
  const listener = (m: unknown): void => {
    seen.push(m as ConnectionMessage);
  };
  diagnostics.subscribe(CONNECTION_CHANNEL, listener);
  cleanups.push(() => diagnostics.unsubscribe(CONNECTION_CHANNEL, listener));
  return seen;
}

// Exactly these sockets were announced, in this order, with the agent as owner.
function expectAnnounced(seen: ConnectionMessage[], agent: http.Agent, sockets: net.Socket[]): void {
  expect(seen).toHaveLength(sockets.length);
  for (const [i, m] of seen.entries()) {
    expect(m.owner).toBe(agent);
    expect(m.socket).toBe(sockets[i]);
  }
}

// A forward proxy: CONNECT tunnels for HTTPS, and answers absolute-form
// HTTP requests itself. Keeps every client-side socket so that a test can
// close one behind the client's back.
interface Proxy {
  port: number;
  tunnels: number;
  clients: net.Socket[];
}
async function startProxy(): Promise<Proxy> {
  const proxy: Proxy = { port: 0, tunnels: 0, clients: [] };
  const server = http.createServer((req, res) => res.end(`proxied ${req.url}`));
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: net.Socket) => proxy.clients.push(s));
  server.on('connect', (req: http.IncomingMessage, client: net.Socket) => {
    proxy.tunnels += 1;
    const [host, port] = req.url!.split(':');
    const upstream = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  proxy.port = await listen(server);
  cleanups.push(() => {
    server.closeAllConnections();
    for (const s of proxy.clients) s.destroy();
    server.close();
  });
  return proxy;
}

let tlsKey: Buffer;
let tlsCert: Buffer;
beforeAll(() => {
  ({ key: tlsKey, cert: tlsCert } = makeCertificate());
});

describe.runIf(proxied)(`through a proxy (proxyEnv, Node ${process.versions.node})`, () => {
  it('HttpsAgent over a CONNECT tunnel: one announcement per connection (the TLS socket), tuned, and a stale tunnel is replaced', async () => {
    const target = https.createServer({ key: tlsKey, cert: tlsCert }, (_req, res) => res.end('x'));
    target.keepAliveTimeout = 60_000;
    const targetPort = await listen(target);
    cleanups.push(() => {
      target.closeAllConnections();
      target.close();
    });
    const proxy = await startProxy();
    const seen = announcements();
    const agent = new HttpsAgent({ ...proxyEnv({ HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` }), tcpKeepAlive: { idleMs: 7000 } });
    cleanups.push(() => agent.destroy());
    const extra = { ca: tlsCert, servername: 'localhost' };

    const first = await get(agent, https, targetPort, extra);
    expect(first).toMatchObject({ ok: true, reused: false });
    expect(first.socket).toBeInstanceOf(tls.TLSSocket);
    expect(proxy.tunnels).toBe(1);
    expectAnnounced(seen, agent, [first.socket]);
    await settle();
    // The tuning reached the tunnel's TCP connection, after Node's own.
    expect(getKeepAlive(first.socket)).toMatchObject({ enabled: true, idleMs: 7000 });

    const second = await get(agent, https, targetPort, extra);
    expect(second).toMatchObject({ ok: true, reused: true });
    expect(second.socket).toBe(first.socket);
    await settle();

    // The proxy drops the tunnel while the client's loop is busy.
    proxy.clients.at(-1)!.destroy();
    spinUntilPeerClosed(first.socket);
    const third = await get(agent, https, targetPort, extra);
    expect(third).toMatchObject({ ok: true, reused: false });
    expect(third.socket).not.toBe(first.socket);
    expect(agent.staleSocketsDestroyed).toBe(1);
    expect(proxy.tunnels).toBe(2);
    expectAnnounced(seen, agent, [first.socket, third.socket]);
  });

  it('Agent over an HTTP proxy: requests go to the proxy, one announcement per connection, a stale one is replaced', async () => {
    const proxy = await startProxy();
    const seen = announcements();
    const agent = new Agent(proxyEnv({ HTTP_PROXY: `http://127.0.0.1:${proxy.port}` }));
    cleanups.push(() => agent.destroy());
    // Nothing listens on this port: only the proxy answers.
    const first = await get(agent, http, 9);
    expect(first).toMatchObject({ ok: true, reused: false });
    expect(first.socket.remotePort).toBe(proxy.port);
    await settle();
    const second = await get(agent, http, 9);
    expect(second).toMatchObject({ ok: true, reused: true });
    expect(second.socket).toBe(first.socket);
    await settle();
    proxy.clients.at(-1)!.destroy();
    spinUntilPeerClosed(first.socket);
    const third = await get(agent, http, 9);
    expect(third).toMatchObject({ ok: true, reused: false });
    expect(agent.staleSocketsDestroyed).toBe(1);
    expect(proxy.clients).toHaveLength(2);
    expectAnnounced(seen, agent, [first.socket, third.socket]);
  });
});

describe.runIf(!proxied)(`Node ${process.versions.node} has no proxyEnv`, () => {
  it('HttpsAgent ignores the option, connects straight to the server and announces that one connection', async () => {
    const target = https.createServer({ key: tlsKey, cert: tlsCert }, (_req, res) => res.end('x'));
    const targetPort = await listen(target);
    cleanups.push(() => {
      target.closeAllConnections();
      target.close();
    });
    const proxy = await startProxy();
    const seen = announcements();
    const agent = new HttpsAgent(proxyEnv({ HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` }));
    cleanups.push(() => agent.destroy());
    const first = await get(agent, https, targetPort, { ca: tlsCert, servername: 'localhost' });
    expect(first).toMatchObject({ ok: true, reused: false });
    expect(first.socket.remotePort).toBe(targetPort);
    expect(proxy.tunnels).toBe(0);
    expectAnnounced(seen, agent, [first.socket]);
  });
});
