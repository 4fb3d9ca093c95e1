import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { printable } from '../src/cli/format';
import { DEMO_HELP, HELP, WATCH_HELP } from '../src/cli/usage';

const root = path.join(__dirname, '..');
const cli = path.join(root, 'lib', 'cli', 'index.js');

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

async function run(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

// Every byte a terminal acts on: C0 controls (ESC, BEL, CR, LF, …), DEL and C1 (CSI is \x9b).
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

describe('sockstate help <topic>: only the commands, never what an object inherits', () => {
  it.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'])('help %s is a usage error (exit 2)', async (topic) => {
    const r = await run(['help', topic]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`sockstate: no help for '${topic}': commands are demo, watch\n\n${HELP}`);
  });

  it('help demo and help watch still print their full texts', async () => {
    for (const [topic, text] of [
      ['demo', DEMO_HELP],
      ['watch', WATCH_HELP],
    ] as const) {
      const r = await run(['help', topic]);
      expect(r).toEqual({ code: 0, stdout: text, stderr: '' });
    }
  });
});

describe('arguments are echoed without their control characters', () => {
  const cases: [string, string[], string][] = [
    ['a help topic', ['help', '\x1b[31mred\x07'], "sockstate: no help for '\\x1b[31mred\\x07': commands are demo, watch\n"],
    ['an unknown command', ['\x1b]0;owned\x07'], "sockstate: unknown command '\\x1b]0;owned\\x07'\n"],
    ['an unknown option', ['watch', '--x\x1b[2J'], "sockstate: unknown option '--x\\x1b[2J'\n"],
    ['an option value', ['watch', '--interval', '1\x9b2J', '127.0.0.1:1'], "sockstate: option '--interval' must be a whole number of ms from 10 to 3600000, not '1\\x9b2J'\n"],
    ['a host', ['watch', 'a\x1b[2J\rb.invalid:80'], "sockstate: cannot resolve 'a\\x1b[2J\\x0db.invalid': names under .invalid never resolve (RFC 6761)\n"],
    ['demo arguments', ['demo', '\x1b[?1049h'], 'sockstate: demo takes no arguments, got: \\x1b[?1049h\n'],
  ];
  it.each(cases)('%s', async (_what, args, expected) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr.startsWith(expected), r.stderr).toBe(true);
    expect(r.stderr).not.toMatch(CONTROL);
  });

  it('printable() escapes controls, DEL, C1 and bidi overrides, and leaves other text alone', () => {
    expect(printable('plain host:80 ✓ ünïcode')).toBe('plain host:80 ✓ ünïcode');
    expect(printable('\x00\x1b\x7f\x9b\n\t')).toBe('\\x00\\x1b\\x7f\\x9b\\x0a\\x09');
    expect(printable('a\u202eb\u2066c\u2028')).toBe('a\\u202eb\\u2066c\\u2028');
  });
});
