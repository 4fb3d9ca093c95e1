import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

// The package as users load it: the compiled lib/ through package.json
// "exports", from CommonJS and from ESM, and its emitted .d.ts.
const root = path.join(__dirname, '..');
const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' }).trim();

describe('the published package', () => {
  it("require('sockstate') works", () => {
    const out = node(['-e', "const s = require('sockstate'); console.log(typeof s.connectionState, typeof s.tcpInfo, typeof s.takeSocketError, typeof s.SockstateError, s.supported)"]);
    expect(out).toBe('function function function function true');
  });

  it("import { connectionState } from 'sockstate' works", () => {
    const out = node([
      '--input-type=module',
      '-e',
      "import { connectionState, supported } from 'sockstate'; import * as net from 'node:net'; console.log(connectionState(new net.Socket()).status, supported)",
    ]);
    expect(out).toBe('closed true');
  });

  it('loads without the addon and says so', () => {
    const out = execFileSync(
      process.execPath,
      ['-e', "const s = require('sockstate'); console.log(s.supported, s.unsupportedReason)"],
      { cwd: root, encoding: 'utf8', env: { ...process.env, SOCKSTATE_FORCE_FALLBACK: '1' } },
    ).trim();
    expect(out).toBe('false disabled by SOCKSTATE_FORCE_FALLBACK=1');
  });

  it('the emitted .d.ts types a consumer in strict mode', () => {
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = node([
      tsc, '--noEmit', '--strict', '--skipLibCheck', '--module', 'node16', '--moduleResolution', 'node16', '--target', 'es2022',
      '--types', 'node', path.join('test', 'types', 'consumer.ts'),
    ]);
    expect(result).toBe('');
  });
});
