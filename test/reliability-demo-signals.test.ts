import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..');
const cli = path.join(root, 'lib', 'cli', 'index.js');
const isRoot = process.getuid?.() === 0;

beforeAll(() => {
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'pipe',
  });
}, 120_000);

if (!isRoot) {
  console.log('sockstate demo signal tests: skipped, they need root (network namespaces and veth pairs): run them as root');
}

interface Demo {
  child: ChildProcess;
  pid: number;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `sockstate demo` in a process group of its own, so the test can signal the group as a terminal does. */
function startDemo(): Demo {
  const child = spawn(process.execPath, [cli, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  // 'close' waits for every holder of the pipes to let go: a peer left
  // running (it inherits stderr) would keep this from resolving.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, pid: child.pid!, stdout: () => stdout, stderr: () => stderr, exited };
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while we listed
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) out.push(Number(entry));
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The demo's veth links (ss<pid>…) and named namespaces (sockstate-demo-<pid>…). */
function leftovers(pid: number): { links: string[]; namespaces: string[] } {
  const links = fs.readdirSync('/sys/class/net').filter((n) => n.startsWith(`ss${pid}`));
  const namespaces = fs.existsSync('/run/netns')
    ? fs.readdirSync('/run/netns').filter((n) => n.startsWith(`sockstate-demo-${pid}`))
    : [];
  return { links, namespaces };
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Signals, then checks the exit and that no process, link or namespace is left. */
async function interruptAndCheck(
  demo: Demo,
  send: () => void,
  signal: NodeJS.Signals,
): Promise<void> {
  const peers = childrenOf(demo.pid);
  expect(peers.length).toBeGreaterThan(0);
  send();
  const { code } = await demo.exited;
  expect(code, demo.stdout()).toBe(128 + os.constants.signals[signal]);
  expect(demo.stdout()).toContain(`\ninterrupted (${signal}); cleaned up\n`);
  expect(demo.stdout()).not.toContain('✗');
  expect(demo.stdout()).not.toContain('could not run');
  expect(demo.stderr()).toBe('');
  // The kernel tears a namespace down asynchronously: give it a moment.
  await until(() => peers.every((p) => !alive(p)), 5000, 'the peers to exit');
  await until(() => {
    const left = leftovers(demo.pid);
    return left.links.length === 0 && left.namespaces.length === 0;
  }, 5000, 'the namespace and the veth pair to go');
}

describe.runIf(isRoot)('sockstate demo: signals clean up, however they come (root)', () => {
  it('SIGINT at start-up, before the peer is ready: the peer is stopped, nothing prints after', async () => {
    const demo = startDemo();
    await until(() => childrenOf(demo.pid).length > 0, 10_000, 'the peer to be spawned');
    await interruptAndCheck(demo, () => process.kill(demo.pid, 'SIGINT'), 'SIGINT');
  }, 30_000);

  it('SIGINT to the process group while scenario 5 sets up its namespace: exit 130, not a scenario failure', async () => {
    const demo = startDemo();
    await until(() => leftovers(demo.pid).links.length > 0, 20_000, 'the veth pair');
    await interruptAndCheck(demo, () => process.kill(-demo.pid, 'SIGINT'), 'SIGINT');
  }, 40_000);

  for (const signal of ['SIGHUP', 'SIGTERM'] as const) {
    it(`${signal} to the process group while the peer runs in the namespace`, async () => {
      const demo = startDemo();
      // Running: the link is up and the namespace's name already released.
      await until(() => {
        const left = leftovers(demo.pid);
        return left.links.length > 0 && left.namespaces.length === 0;
      }, 20_000, 'the peer to run inside the released namespace');
      await interruptAndCheck(demo, () => process.kill(-demo.pid, signal), signal);
    }, 40_000);
  }

  it('a double Ctrl-C (SIGINT twice to the group) during scenario 5 still cleans up and exits 130', async () => {
    const demo = startDemo();
    await until(() => {
      const left = leftovers(demo.pid);
      return left.links.length > 0 && left.namespaces.length === 0;
    }, 20_000, 'the peer to run inside the released namespace');
    await interruptAndCheck(
      demo,
      () => {
        process.kill(-demo.pid, 'SIGINT');
        process.kill(-demo.pid, 'SIGINT');
      },
      'SIGINT',
    );
  }, 40_000);

  it('SIGKILL, which nothing can catch: the peer exits with its stdin and the kernel removes the rest', async () => {
    const demo = startDemo();
    await until(() => {
      const left = leftovers(demo.pid);
      return left.links.length > 0 && left.namespaces.length === 0;
    }, 20_000, 'the peer to run inside the released namespace');
    const peers = childrenOf(demo.pid);
    process.kill(demo.pid, 'SIGKILL');
    const { signal } = await demo.exited;
    expect(signal).toBe('SIGKILL');
    await until(() => peers.every((p) => !alive(p)), 5000, 'the peers to exit');
    await until(() => {
      const left = leftovers(demo.pid);
      return left.links.length === 0 && left.namespaces.length === 0;
    }, 5000, 'the namespace and the veth pair to go');
  }, 40_000);
});
