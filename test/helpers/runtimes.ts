import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findProgram } from './programs';

const root = path.join(__dirname, '..', '..');

/** .ci/runtimes: Bun and Deno from the npm registry, pinned (`cd .ci/runtimes && npm ci`). */
export const RUNTIMES_INSTALL = 'cd .ci/runtimes && npm ci';

/**
 * A runtime's binary: `$ENV_NAME`, else the copy .ci/runtimes installs,
 * else `name` on PATH; null when none is there.
 */
export function findRuntime(name: string, envName: string, pinned: string): string | null {
  const fromEnv = process.env[envName];
  const onPath = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, name));
  return findProgram([...(fromEnv ? [fromEnv] : []), path.join(root, '.ci', 'runtimes', 'node_modules', ...pinned.split('/')), ...onPath]);
}

/** The fixture's JSON under `argv` (a runtime and its arguments), run from a folder outside the repository. */
export function runFixture(argv: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ json: Record<string, unknown>; stderr: string }> {
  const fixture = path.join(root, 'test', 'fixtures', 'runtime-core.cjs');
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, [...argv.slice(1), fixture, root], {
      cwd,
      env: { ...process.env, SOCKSTATE_FORCE_FALLBACK: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        resolve({ json: JSON.parse(stdout), stderr });
      } catch {
        reject(new Error(`${argv[0]} exited with ${code}: ${stdout}${stderr}`));
      }
    });
  });
}

/** A fresh folder outside the repository to run a fixture from. */
export function scratch(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
