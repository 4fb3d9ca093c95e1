import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isReservedInvalid, parseEndpoint, UsageError } from '../src/cli/args';
import { colorWanted, jsonLine, sparkline } from '../src/cli/format';
import { DEMO_HELP, HELP, WATCH_HELP } from '../src/cli/usage';
import { listen, spawnFixture } from './helpers/sockets';

const root = path.join(__dirname, '..');
const cli = path.join(root, 'lib', 'cli', 'index.js');
const isRoot = process.getuid?.() === 0;

function sourcesNewerThanLib(dir: string): boolean {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (sourcesNewerThanLib(full)) return true;
      continue;
    }
    if (!entry.name.endsWith('.ts')) continue;
    const out = path.join(root, 'lib', path.relative(path.join(root, 'src'), full)).replace(/\.ts$/, '.js');
    if (!fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(full).mtimeMs) return true;
  }
  return false;
}

beforeAll(() => {
  if (!sourcesNewerThanLib(path.join(root, 'src'))) return;
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'pipe',
  });
}, 120_000);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node lib/cli/index.js …` to completion, stdout and stderr piped (not a terminal). */
async function run(args: readonly string[], timeoutMs = 20_000, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;

describe('sockstate help: asked for, on stdout with exit 0; a usage mistake, on stderr with exit 2', () => {
  // Every way to ask for help prints the full text of what was asked about.
  const asked: [string[], string, string][] = [
    [['--help'], 'the command', HELP],
    [['-h'], 'the command', HELP],
    [['help'], 'the command', HELP],
    [['help', 'help'], 'the command', HELP],
    [['help', '--help'], 'the command', HELP],
    [['help', 'watch'], 'watch', WATCH_HELP],
    [['--help', 'watch'], 'watch', WATCH_HELP],
    [['watch', '--help'], 'watch', WATCH_HELP],
    [['watch', '-h'], 'watch', WATCH_HELP],
    // Help wins over mistakes elsewhere on the line.
    [['watch', '--bogus', '--interval', '5', '-h'], 'watch', WATCH_HELP],
    [['help', 'demo'], 'demo', DEMO_HELP],
    [['demo', '--help'], 'demo', DEMO_HELP],
    [['demo', 'now', '-h'], 'demo', DEMO_HELP],
  ];
  it.each(asked)('sockstate %j prints the full help of %s', async (args, _of, text) => {
    const r = await run(args);
    expect(r).toEqual({ code: 0, stdout: text, stderr: '' });
  });

  it('the texts are the full ones: usage, every command or option, exit codes', () => {
    expect(HELP).toMatch(/^Usage: sockstate <command> \[options\]\n/);
    for (const part of ['demo', 'watch <host:port>', 'help [command]', '-h, --help', '-v, --version', 'Exit codes:']) expect(HELP).toContain(part);
    expect(WATCH_HELP).toMatch(/^Usage: sockstate watch \[options\] <host:port>\n/);
    for (const part of ['--interval <ms>', '--count <n>', '--stdin', '--json', '-h, --help', 'Exit codes:']) expect(WATCH_HELP).toContain(part);
    expect(DEMO_HELP).toMatch(/^Usage: sockstate demo\n/);
    expect(DEMO_HELP).toContain('Exit code 0 when every scenario behaved');
  });

  const mistakes: [string, string[], string][] = [
    ['an unknown help topic', ['help', 'frobnicate'], `sockstate: no help for 'frobnicate': commands are demo, watch\n\n${HELP}`],
    ['an unknown command', ['frobnicate'], `sockstate: unknown command 'frobnicate'\n\n${HELP}`],
    ['no command', [], HELP],
    ['two help topics', ['help', 'watch', 'demo'], 'sockstate: help takes one command, got 2: watch demo\n'],
    ['--help=x', ['watch', '--help=x'], "sockstate: option '--help' takes no value\n"],
  ];
  it.each(mistakes)('%s: stderr, exit 2, nothing on stdout', async (_what, args, stderr) => {
    const r = await run(args);
    expect(r).toEqual({ code: 2, stdout: '', stderr });
  });

  it('watch --help never connects, even with a target', async () => {
    const server = net.createServer();
    const port = await listen(server);
    const accepted: net.Socket[] = [];
    server.on('connection', (s) => accepted.push(s));
    try {
      const r = await run(['watch', '--help', `127.0.0.1:${port}`]);
      expect(r).toEqual({ code: 0, stdout: WATCH_HELP, stderr: '' });
      // Connections are accepted in order: had the command connected, its
      // connection would come before this one.
      const own = net.connect(port, '127.0.0.1');
      await Promise.all([once(server, 'connection'), once(own, 'connect')]);
      const ownPort = own.localPort;
      own.destroy();
      expect(accepted).toHaveLength(1);
      expect(accepted[0]!.remotePort).toBe(ownPort);
    } finally {
      for (const s of accepted) s.destroy();
      server.close();
    }
  });

  it('--version prints the version in package.json', async () => {
    for (const flag of ['--version', '-v']) {
      const r = await run([flag]);
      expect(r).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    }
  });
});

describe('sockstate watch: bad input exits 2 with a message', () => {
  const cases: [string, string[], string][] = [
    ['no target', ['watch'], 'watch needs a target'],
    ['no port', ['watch', '127.0.0.1'], "'127.0.0.1': no port"],
    ['an empty port', ['watch', 'localhost:'], "'localhost:': no port"],
    ['no port after an IPv6 address', ['watch', '[::1]'], "'[::1]': no port"],
    ['an IPv6 address without brackets', ['watch', '::1:80'], 'put an IPv6 address in brackets'],
    ['a port out of range', ['watch', '127.0.0.1:65536'], 'port 65536 is out of range (1-65535)'],
    ['port 0', ['watch', '127.0.0.1:0'], 'port 0 is out of range'],
    ['a port that is not a number', ['watch', '127.0.0.1:http'], "port 'http' is not a number"],
    ['an unknown option', ['watch', '--bogus', '127.0.0.1:80'], "unknown option '--bogus'"],
    ['an interval below the range', ['watch', '--interval', '5', '127.0.0.1:80'], "option '--interval' must be from 10 to 3600000 ms, not 5"],
    ['an interval that is not a number', ['watch', '--interval=fast', '127.0.0.1:80'], "option '--interval' must be a whole number of ms"],
    ['an interval without a value', ['watch', '127.0.0.1:80', '--interval'], "option '--interval' needs a value"],
    ['two targets', ['watch', '127.0.0.1:80', '127.0.0.1:81'], 'watch takes one target'],
    // RFC 6761: .invalid never resolves; the command answers without a lookup.
    ['a name under .invalid', ['watch', 'nothing.invalid:80'], "cannot resolve 'nothing.invalid': names under .invalid never resolve"],
  ];
  for (const [what, args, message] of cases) {
    it(what, async () => {
      const r = await run(args);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^sockstate: .*\n$/);
      expect(r.stderr).toContain(message);
    });
  }

  it('a name the resolver rejects without sending a query', async () => {
    // A 64-character label cannot be encoded in a DNS query (RFC 1035: 63
    // at most), so the C library fails before any packet; strace, where
    // present, proves that no IP socket is even opened.
    const host = `${'a'.repeat(64)}.test`;
    const r = await run(['watch', `${host}:80`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`sockstate: cannot resolve '${host}' \\((ENOTFOUND|EAI_FAIL|EAI_NONAME)\\)`));
    const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-cli-')), 'strace.log');
    const strace = spawnSync('strace', ['-f', '-e', 'trace=socket', '-o', log, process.execPath, cli, 'watch', `${host}:80`], {
      timeout: 20_000,
    });
    if (strace.error !== undefined) return;
    const trace = fs.readFileSync(log, 'utf8');
    fs.rmSync(path.dirname(log), { recursive: true });
    expect(strace.status).toBe(2);
    expect(trace).toContain('+++ exited with 2 +++');
    expect(trace).not.toMatch(/socket\(AF_INET6?,/);
  });

  it('a refused connection', async () => {
    const server = net.createServer();
    const port = await listen(server);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const r = await run(['watch', `127.0.0.1:${port}`]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`sockstate: connection to 127.0.0.1:${port} refused (tried 127.0.0.1:${port})\n`);
  });

  it('demo takes no arguments', async () => {
    const r = await run(['demo', 'now']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('sockstate: demo takes no arguments');
  });
});

type JsonRecord = Record<string, unknown>;

/** Runs `watch --json` until it exits, handing each parsed line to `onLine`. */
function watchJson(args: readonly string[], onLine: (record: JsonRecord, all: JsonRecord[]) => void): {
  child: ChildProcess;
  done: Promise<{ code: number | null; records: JsonRecord[]; stderr: string }>;
} {
  const child = spawn(process.execPath, [cli, 'watch', '--json', ...args], { stdio: ['pipe', 'pipe', 'pipe'], timeout: 20_000 });
  const records: JsonRecord[] = [];
  let buffered = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const record = JSON.parse(buffered.slice(0, nl)) as JsonRecord;
      buffered = buffered.slice(nl + 1);
      records.push(record);
      onLine(record, records);
      nl = buffered.indexOf('\n');
    }
  });
  const done = once(child, 'close').then(([code]) => {
    expect(buffered).toBe('');
    return { code: code as number | null, records, stderr };
  });
  return { child, done };
}

const SAMPLE_FIELDS = [
  'seq', 'time', 'elapsedMs', 'status', 'tcpState', 'pendingError', 'readClosed', 'stalled', 'unreadBytes',
  'unsentBytes', 'unackedBytes', 'rtt', 'rttvar', 'sndCwnd', 'unacked', 'retransmits', 'totalRetrans',
  'bytesSent', 'bytesReceived', 'bytesAcked',
];

async function watchUntilPeerActs(command: 'close' | 'reset', host = '127.0.0.1') {
  const { child: server, firstLine } = await spawnFixture('cli-server.js', [host]);
  try {
    const target = net.isIPv6(host) ? `[${host}]:${firstLine}` : `${host}:${firstLine}`;
    let told = false;
    const watch = watchJson(['--interval', '20', target], (_record, all) => {
      // Two samples of the open connection, then the peer acts.
      if (!told && all.filter((r) => r.type === 'sample').length >= 2) {
        told = true;
        server.stdin!.write(`${command}\n`);
      }
    });
    return await watch.done;
  } finally {
    server.kill();
  }
}

describe('sockstate watch --json', () => {
  it('streams samples of an open connection, then ends with "peer closed" when the peer closes', async () => {
    const { code, records, stderr } = await watchUntilPeerActs('close');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const [first, ...rest] = records;
    expect(first).toMatchObject({ type: 'connected', remoteAddress: '127.0.0.1', intervalMs: 20 });
    const samples = rest.filter((r) => r.type === 'sample');
    expect(samples.length).toBeGreaterThanOrEqual(3);
    for (const s of samples) {
      for (const field of SAMPLE_FIELDS) expect(s, field).toHaveProperty(field);
      expect(typeof s.rtt).toBe('number');
      expect(typeof s.sndCwnd).toBe('number');
      expect(typeof s.bytesReceived).toBe('number');
    }
    expect(samples[0]).toMatchObject({ seq: 1, status: 'open', tcpState: 'ESTABLISHED', pendingError: false });
    // The sample taken when Node reported the end: the peer's FIN, ours not sent.
    expect(samples.at(-1)).toMatchObject({ status: 'peerClosed', tcpState: 'CLOSE_WAIT', readClosed: true, pendingError: false });
    expect(samples.at(-1)!.bytesReceived).toBeGreaterThanOrEqual('hello\n'.length);
    expect(records.at(-1)).toMatchObject({ type: 'end', reason: 'peer closed', code: null, samples: samples.length });
  });

  it('ends with "reset" and the error code when the peer resets', async () => {
    const { code, records } = await watchUntilPeerActs('reset');
    expect(code).toBe(0);
    const samples = records.filter((r) => r.type === 'sample');
    expect(samples.length).toBeGreaterThanOrEqual(2);
    expect(samples[0]).toMatchObject({ status: 'open', tcpState: 'ESTABLISHED' });
    expect(records.at(-1)).toMatchObject({ type: 'end', reason: 'reset', code: 'ECONNRESET' });
  });

  it.runIf(os.networkInterfaces().lo?.some((a) => a.address === '::1') ?? false)('watches [::1]:port', async () => {
    const { code, records } = await watchUntilPeerActs('close', '::1');
    expect(code).toBe(0);
    expect(records[0]).toMatchObject({ type: 'connected', remoteAddress: '::1' });
    expect(records.at(-1)).toMatchObject({ type: 'end', reason: 'peer closed' });
  });

  it('with --stdin, sends what arrives on stdin to the peer', async () => {
    const { child: server, firstLine } = await spawnFixture('cli-server.js', ['127.0.0.1']);
    try {
      let wrote = false;
      let told = false;
      const watch = watchJson(['--stdin', '--interval', '20', `127.0.0.1:${firstLine}`], (record) => {
        if (record.type !== 'sample') return;
        if (!wrote) {
          wrote = true;
          watch.child.stdin!.write('ping\n');
        } else if (!told && (record.bytesAcked as number) > 'ping\n'.length) {
          told = true;
          server.stdin!.write('close\n');
        }
      });
      const { code, records } = await watch.done;
      expect(code).toBe(0);
      const samples = records.filter((r) => r.type === 'sample');
      expect(samples[0]).toMatchObject({ bytesSent: 0 });
      // bytesAcked counts the SYN too.
      expect(samples.at(-1)).toMatchObject({ bytesSent: 5, bytesAcked: 6, status: 'peerClosed' });
      expect(records.at(-1)).toMatchObject({ type: 'end', reason: 'peer closed' });
    } finally {
      server.kill();
    }
  });

  it('resolves a name (localhost) and stops after --count samples', async () => {
    const { child: server, firstLine } = await spawnFixture('cli-server.js', ['127.0.0.1']);
    try {
      const { code, records } = await watchJson(['--count', '3', '--interval', '20', `localhost:${firstLine}`], () => {}).done;
      expect(code).toBe(0);
      expect(records[0]).toMatchObject({ type: 'connected', target: `localhost:${firstLine}`, remoteAddress: '127.0.0.1' });
      expect(records.filter((r) => r.type === 'sample').map((r) => r.seq)).toEqual([1, 2, 3]);
      expect(records.at(-1)).toMatchObject({ type: 'end', reason: 'count reached', samples: 3 });
    } finally {
      server.kill();
    }
  });

  it('ends with "interrupted" and exit code 0 on SIGINT', async () => {
    const { child: server, firstLine } = await spawnFixture('cli-server.js', ['127.0.0.1']);
    try {
      let interrupted = false;
      const watch = watchJson(['--interval', '20', `127.0.0.1:${firstLine}`], (record) => {
        if (!interrupted && record.type === 'sample') {
          interrupted = true;
          watch.child.kill('SIGINT');
        }
      });
      const { code, records } = await watch.done;
      expect(code).toBe(0);
      expect(records.at(-1)).toMatchObject({ type: 'end', reason: 'interrupted' });
    } finally {
      server.kill();
    }
  });
});

describe('sockstate watch, plain output', () => {
  it('prints one block per sample when stdout is not a terminal, without escape codes', async () => {
    const { child: server, firstLine } = await spawnFixture('cli-server.js', ['127.0.0.1']);
    try {
      const r = await run(['watch', '--count', '2', '--interval', '20', `127.0.0.1:${firstLine}`]);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain('\x1b');
      expect(r.stdout.match(/^sample \d+ at /gm)).toHaveLength(2);
      expect(r.stdout).toMatch(/^status +open +tcp state +ESTABLISHED/m);
      expect(r.stdout).toMatch(/^rtt history +[▁▂▃▄▅▆▇█]{2} /m);
      expect(r.stdout).toMatch(/^ended: count reached after [0-9.]+ s, 2 samples$/m);
    } finally {
      server.kill();
    }
  });
});

describe('sockstate demo', () => {
  it('runs every scenario, each as the kernel must, and exits 0', async () => {
    const r = await run(['demo'], 60_000);
    expect(r.stderr).toBe('');
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).not.toContain('\x1b');
    const titles = [
      '1. The peer closes cleanly',
      '2. The peer resets',
      '3. We half-close',
      '4. A stale keep-alive connection about to be reused',
      '5. The peer vanishes silently',
    ];
    for (const title of titles) expect(r.stdout).toContain(`\n${title}\n`);
    expect(r.stdout).toMatch(/│ +peerClosed +CLOSE_WAIT +false +0 +false$/m);
    expect(r.stdout).toMatch(/│ +reset +CLOSE +true +0 +false$/m);
    expect(r.stdout).toMatch(/│ +localClosed +FIN_WAIT2 +false +4 +false$/m);
    expect(r.stdout).toContain("Node then reported 'error' ECONNRESET");
    expect(r.stdout).not.toContain('✗');
    if (isRoot) {
      expect(r.stdout).toMatch(/│ +open +ESTABLISHED +false +0 +true$/m);
      expect(r.stdout).toMatch(/│ +errored +CLOSE +true +0 +true$/m);
      expect(r.stdout).toContain("Node then reported 'error' ETIMEDOUT");
      expect(r.stdout.match(/^ {3}✓ /gm)).toHaveLength(5);
      expect(r.stdout).toContain('5 of 5 scenarios behaved as the kernel must.');
      // Nothing of the namespace is left behind.
      expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toMatch(/sockstate-demo-/);
    } else {
      console.log('sockstate demo: the vanishing-peer scenario needs root; checking that it reports itself skipped');
      expect(r.stdout).toContain('skipped: needs root');
      expect(r.stdout.match(/^ {3}✓ /gm)).toHaveLength(4);
      expect(r.stdout).toContain('4 of 4 scenarios behaved as the kernel must (1 skipped).');
    }
  }, 60_000);
});

describe('sockstate without the native addon', () => {
  const env = { ...process.env, SOCKSTATE_FORCE_FALLBACK: '1' };

  it('demo says why it has nothing to compare and exits 1', async () => {
    const r = await run(['demo'], 20_000, env);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('The native probe is not available: disabled by SOCKSTATE_FORCE_FALLBACK=1');
  });

  it('watch samples from flags, with every tcp_info field null', async () => {
    const { child: server, firstLine } = await spawnFixture('cli-server.js', ['127.0.0.1']);
    try {
      const r = await run(['watch', '--json', '--count', '1', `127.0.0.1:${firstLine}`], 20_000, env);
      expect(r.code).toBe(0);
      const [connected, sample, end] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as JsonRecord);
      expect(connected).toMatchObject({ type: 'connected', source: 'flags' });
      expect(sample).toMatchObject({ type: 'sample', status: 'open', tcpState: null, rtt: null, bytesReceived: null });
      expect(end).toMatchObject({ type: 'end', reason: 'count reached' });
    } finally {
      server.kill();
    }
  });
});

describe('command-line helpers', () => {
  it('parses host:port, [ipv6]:port and names', () => {
    expect(parseEndpoint('127.0.0.1:80')).toEqual({ host: '127.0.0.1', port: 80 });
    expect(parseEndpoint('[::1]:65535')).toEqual({ host: '::1', port: 65535 });
    expect(parseEndpoint('localhost:1')).toEqual({ host: 'localhost', port: 1 });
    expect(() => parseEndpoint('[::1:80')).toThrow(UsageError);
    expect(() => parseEndpoint('[nothost]:80')).toThrow("'nothost' is not an IPv6 address");
    expect(() => parseEndpoint('host:+80')).toThrow("port '+80' is not a number");
  });

  it('recognises names under .invalid, only those', () => {
    expect(isReservedInvalid('x.invalid')).toBe(true);
    expect(isReservedInvalid('X.INVALID.')).toBe(true);
    expect(isReservedInvalid('invalid')).toBe(true);
    expect(isReservedInvalid('notinvalid')).toBe(false);
    expect(isReservedInvalid('invalid.example')).toBe(false);
  });

  it('colours only a terminal, and never with NO_COLOR set', () => {
    expect(colorWanted({ isTTY: true }, {})).toBe(true);
    expect(colorWanted({ isTTY: false }, {})).toBe(false);
    expect(colorWanted({}, {})).toBe(false);
    expect(colorWanted({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorWanted({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
  });

  it('writes bigint counters as exact JSON integers', () => {
    const line = jsonLine({ a: 2n ** 64n - 1n, b: 'x', c: null, d: undefined, e: 1.5 });
    expect(line).toBe('{"a":18446744073709551615,"b":"x","c":null,"e":1.5}');
  });

  it('draws a sparkline from the minimum to the maximum', () => {
    expect(sparkline([])).toBe('');
    expect(sparkline([5, 5])).toBe('▁▁');
    expect(sparkline([0, 7, 14])).toBe('▁▅█');
  });
});
