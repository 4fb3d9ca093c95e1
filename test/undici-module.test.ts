import { execFile } from 'node:child_process';
import * as diagnostics from 'node:diagnostics_channel';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as undici from 'undici';
import { describe, expect, it } from 'vitest';
import { CONNECTION_CHANNEL, type ConnectionMessage, REUSE_CHECK_CHANNEL, type ReuseCheckMessage } from '../src/policy/channel';
import { connectionState } from '../src/index';
import { Agent, Client, Pool } from '../src/integrations/undici';
import { caught } from './helpers/errors';
import { listen, spawnFixture } from './helpers/sockets';

// The public module `sockstate/undici`: bound to the `undici` the user
// installed, loaded at first use and not before, and a coded error when
// that peer is missing.

const run = promisify(execFile);
const root = path.join(__dirname, '..');
const [nodeMajor, nodeMinor] = process.versions.node.split('.').map(Number) as [number, number];
const undici8Loads = nodeMajor > 22 || (nodeMajor === 22 && nodeMinor >= 19);

async function node(script: string, cwd = root): Promise<string> {
  const env = { ...process.env };
  delete env.NODE_PATH;
  const { stdout } = await run(process.execPath, ['-e', script], { cwd, env, timeout: 20_000 });
  return stdout.trim();
}

describe('examples/fetch.js', () => {
  it("Node's fetch fails on the dropped connection; with sockstate's Agent, per request or global, it does not", async () => {
    const { stdout } = await run(process.execPath, [path.join('examples', 'fetch.js')], { cwd: root, timeout: 20_000 });
    const lines = stdout.trimEnd().split('\n');
    // Node 22+'s bundled undici validates an idle socket in a setImmediate,
    // which now and then sees the FIN first even from an I/O callback (the
    // race tests count how often); Node 20's never does.
    const [major] = process.versions.node.split('.').map(Number) as [number];
    if (major === 20) expect(lines[0]).toBe("Node's fetch: UND_ERR_SOCKET (other side closed)");
    else expect(lines[0]).toMatch(/^Node's fetch: (UND_ERR_SOCKET \(other side closed\)|200 ok)$/);
    expect(lines.slice(1)).toEqual([
      'fetch with { dispatcher: agent }: 200 ok',
      'fetch after setGlobalDispatcher(new Agent()): 200 ok',
      'stale sockets destroyed: 1 1',
    ]);
  });
});

describe('examples/fetch-retry.js', () => {
  it('the retry interceptor composed with the guarded Agent sends a GET again after a reset', async () => {
    const { stdout } = await run(process.execPath, [path.join('examples', 'fetch-retry.js')], { cwd: root, timeout: 20_000 });
    expect(stdout).toBe('200 ok (the server saw 2 requests)\n');
  });
});

describe('sockstate/undici', () => {
  it('requiring it loads no undici, and the first Agent loads undici but leaves the global dispatcher as the user had it', async () => {
    const out = await node(`
      const s1 = Symbol.for('undici.globalDispatcher.1');
      const s2 = Symbol.for('undici.globalDispatcher.2');
      const loaded = () => Object.keys(require.cache).some((f) => f.includes('/node_modules/undici/'));
      const { Agent } = require('sockstate/undici');
      const before = [loaded(), typeof globalThis[s1], typeof globalThis[s2]];
      const agent = new Agent();
      const undici = require('undici');
      const after = [loaded(), typeof globalThis[s1], typeof globalThis[s2], typeof undici.getGlobalDispatcher()];
      // A global dispatcher the user sets is the one fetch() and undici use.
      undici.setGlobalDispatcher(agent);
      const set = [globalThis[s1] === agent, undici.getGlobalDispatcher() === agent];
      console.log(JSON.stringify({ before, after, set, ours: agent instanceof Agent && agent instanceof undici.Agent }));
    `);
    // undici 7's getGlobalDispatcher() reads the legacy symbol: undefined
    // until somebody sets one, as before undici was loaded.
    expect(JSON.parse(out)).toEqual({
      before: [false, 'undefined', 'undefined'],
      after: [true, 'undefined', 'undefined', 'undefined'],
      set: [true, true],
      ours: true,
    });
  });

  it("a user's global dispatcher set before the first Agent is kept", async () => {
    const out = await node(`
      const undici = require('undici');
      const mine = new undici.Agent();
      undici.setGlobalDispatcher(mine);
      const { Agent } = require('sockstate/undici');
      new Agent();
      console.log(JSON.stringify(undici.getGlobalDispatcher() === mine));
    `);
    expect(JSON.parse(out)).toBe(true);
  });

  it(`undici 8 on Node ${process.versions.node}: ${undici8Loads ? 'loads' : 'refused with ERR_SOCKSTATE_PEER_UNSUPPORTED, saying why'}`, async () => {
    // A project whose undici is 8, with a copy of sockstate (no addon
    // needed here) so that its require('undici') finds this project's copy.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-undici8-'));
    try {
      const pkg = path.join(dir, 'node_modules', 'sockstate');
      fs.mkdirSync(pkg, { recursive: true });
      fs.cpSync(path.join(root, 'lib'), path.join(pkg, 'lib'), { recursive: true });
      fs.copyFileSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
      fs.symlinkSync(path.join(root, 'node_modules', 'node-gyp-build'), path.join(dir, 'node_modules', 'node-gyp-build'));
      fs.symlinkSync(path.join(root, 'node_modules', 'undici8'), path.join(dir, 'node_modules', 'undici'));
      const { stdout } = await run(
        process.execPath,
        [
          '-e',
          `const { Agent } = require('sockstate/undici');
           try { new Agent(); console.log(JSON.stringify({ loaded: require('undici/package.json').version })); }
           catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`,
        ],
        { cwd: dir },
      );
      const result = JSON.parse(stdout) as Record<string, string>;
      if (undici8Loads) {
        expect(result).toEqual({ loaded: '8.13.0' });
      } else {
        expect(result).toEqual({
          name: 'SockstateError',
          code: 'ERR_SOCKSTATE_PEER_UNSUPPORTED',
          message: `the installed undici 8.13.0 needs Node >=22.19.0 and cannot load on Node ${process.versions.node}: install undici 7 (npm install undici@7) or upgrade Node`,
        });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('undici 6: BalancedPool, ProxyAgent and EnvHttpProxyAgent load; RoundRobinPool, which undici 6 lacks, is ERR_SOCKSTATE_PEER_UNSUPPORTED', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-undici6-'));
    try {
      const pkg = path.join(dir, 'node_modules', 'sockstate');
      fs.mkdirSync(pkg, { recursive: true });
      fs.cpSync(path.join(root, 'lib'), path.join(pkg, 'lib'), { recursive: true });
      fs.copyFileSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
      fs.symlinkSync(path.join(root, 'node_modules', 'node-gyp-build'), path.join(dir, 'node_modules', 'node-gyp-build'));
      fs.symlinkSync(path.join(root, 'node_modules', 'undici6'), path.join(dir, 'node_modules', 'undici'));
      const out = await node(
        `
        process.removeAllListeners('warning');
        const u = require('sockstate/undici');
        const made = [new u.BalancedPool(['http://127.0.0.1:1']), new u.ProxyAgent('http://127.0.0.1:1'), new u.EnvHttpProxyAgent()];
        const undici = require('undici');
        let err;
        try { new u.RoundRobinPool('http://127.0.0.1:1'); } catch (e) { err = [e.name, e.code, e.message]; }
        console.log(JSON.stringify({
          version: require('undici/package.json').version,
          ours: made.map((d, i) => d instanceof [u.BalancedPool, u.ProxyAgent, u.EnvHttpProxyAgent][i]),
          theirs: made.map((d, i) => d instanceof [undici.BalancedPool, undici.ProxyAgent, undici.EnvHttpProxyAgent][i]),
          err,
        }));
        Promise.all(made.map((d) => d.close())).then(() => process.exit(0));
      `,
        dir,
      );
      expect(JSON.parse(out)).toEqual({
        version: '6.29.1',
        ours: [true, true, true],
        theirs: [true, true, true],
        err: ['SockstateError', 'ERR_SOCKSTATE_PEER_UNSUPPORTED', 'sockstate/undici: the installed undici 6.29.1 has no RoundRobinPool'],
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("without undici installed: require works, the first Agent throws ERR_SOCKSTATE_PEER_MISSING, 'sockstate' is unaffected", async () => {
    // A project where sockstate is installed and undici is not: a copy of
    // the package (no addon: it answers from flags) with its one runtime
    // dependency the loader needs.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-no-undici-'));
    try {
      const pkg = path.join(dir, 'node_modules', 'sockstate');
      fs.mkdirSync(path.join(pkg, 'node_modules'), { recursive: true });
      fs.cpSync(path.join(root, 'lib'), path.join(pkg, 'lib'), { recursive: true });
      fs.copyFileSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
      fs.symlinkSync(path.join(root, 'node_modules', 'bindings'), path.join(pkg, 'node_modules', 'bindings'));
      fs.symlinkSync(path.join(root, 'node_modules', 'file-uri-to-path'), path.join(pkg, 'node_modules', 'file-uri-to-path'));
      const out = await node(
        `
        let resolvable = true;
        try { require.resolve('undici'); } catch { resolvable = false; }
        const { Agent, Pool, Client } = require('sockstate/undici');
        const errs = [() => new Agent(), () => new Pool('http://127.0.0.1:1'), () => new Client('http://127.0.0.1:1')].map((f) => {
          try { f(); return null; } catch (e) { return [e.name, e.code, e.message]; }
        });
        console.log(JSON.stringify({ resolvable, errs, core: typeof require('sockstate').isReusable }));
      `,
        dir,
      );
      const message = "sockstate/undici needs the optional peer dependency 'undici', which is not installed: run npm install undici";
      expect(JSON.parse(out)).toEqual({
        resolvable: false,
        errs: [0, 1, 2].map(() => ['SockstateError', 'ERR_SOCKSTATE_PEER_MISSING', message]),
        core: 'function',
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Agent, Pool and Client are undici dispatchers bound to the installed undici, and can be subclassed', async () => {
    const server = http.createServer({ keepAliveTimeout: 10_000 }, (_req, res) => res.end('ok\n'));
    const port = await listen(server);
    const origin = `http://127.0.0.1:${port}`;
    class MyAgent extends Agent {
      label = 'mine';
    }
    const agent = new MyAgent();
    const pool = new Pool(origin);
    const client = new Client(origin);
    try {
      expect(agent).toBeInstanceOf(Agent);
      expect(agent).toBeInstanceOf(undici.Agent);
      expect(agent.label).toBe('mine');
      expect(pool).toBeInstanceOf(Pool);
      expect(pool).toBeInstanceOf(undici.Pool);
      expect(client).toBeInstanceOf(Client);
      expect(client).toBeInstanceOf(undici.Client);
      for (const dispatcher of [agent, pool, client]) {
        for (let i = 0; i < 3; i++) {
          const res = await undici.request(`${origin}/`, { dispatcher });
          expect(await res.body.text()).toBe('ok\n');
        }
        expect(dispatcher.staleSocketsDestroyed).toBe(0);
      }
      const err = caught(() => (Agent as unknown as () => unknown)());
      expect(err).toBeInstanceOf(TypeError);
      expect(err.message).toBe("Class constructor Agent cannot be invoked without 'new'");
    } finally {
      await Promise.all([agent.close(), pool.close(), client.close()]);
      server.close();
    }
  });

  it('announces each connection and publishes each check, with the user-visible dispatcher as owner', async () => {
    // A server in a child process that closes connections idle for 300 ms,
    // without a Connection header: the second request finds it dead.
    const { child, firstLine } = await spawnFixture('undici-idle-close-server.js', ['300']);
    const port = Number(firstLine);
    const agent = new Agent();
    const connections: ConnectionMessage[] = [];
    const checks: ReuseCheckMessage[] = [];
    const onConnection = (m: unknown) => {
      if ((m as ConnectionMessage).owner === agent) connections.push(m as ConnectionMessage);
    };
    const onCheck = (m: unknown) => {
      if ((m as ReuseCheckMessage).owner === agent) checks.push(m as ReuseCheckMessage);
    };
    diagnostics.subscribe(CONNECTION_CHANNEL, onConnection);
    diagnostics.subscribe(REUSE_CHECK_CHANNEL, onCheck);
    try {
      const first = await undici.request(`http://127.0.0.1:${port}/`, { dispatcher: agent });
      expect(await first.body.text()).toBe('ok\n');
      // One loop turn: the Client reports itself free ('drain') only after
      // the body has been handed over.
      await new Promise((resolve) => setImmediate(resolve));
      // Wait until the kernel holds the peer's FIN, then dispatch in the
      // same synchronous stretch, before Node can read it.
      const socket = connections[0]!.socket as net.Socket;
      const deadline = Date.now() + 5000;
      while (connectionState(socket).status === 'open' && Date.now() < deadline) {
        // spin
      }
      const second = await undici.request(`http://127.0.0.1:${port}/`, { dispatcher: agent });
      expect(await second.body.text()).toBe('ok\n');
      expect(connections).toHaveLength(2);
      expect(connections.every((c) => c.socket instanceof net.Socket)).toBe(true);
      expect(checks).toEqual([{ owner: agent, reusable: false, reason: 'closed' }]);
      expect(agent.staleSocketsDestroyed).toBe(1);
    } finally {
      diagnostics.unsubscribe(CONNECTION_CHANNEL, onConnection);
      diagnostics.unsubscribe(REUSE_CHECK_CHANNEL, onCheck);
      await agent.close();
      child.stdin!.end();
    }
  });
});
