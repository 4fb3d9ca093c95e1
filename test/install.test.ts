import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findProgram, serverAvailable } from './helpers/programs';

// The prebuilt binaries the package ships: built by scripts/prebuild.js
// (prepack, and .ci/run before the tests), checked here for what they need
// from the machine that loads them.
const root = path.join(__dirname, '..');
const prebuild = require(path.join(root, 'scripts', 'prebuild.js')) as {
  prebuildPath(arch: string): string;
  upToDate(arch: string): boolean;
  check(arch: string): { arch: string; machine: string; glibc: string | null; glibcxx: string | null; problems: string[] };
  compareVersions(a: number[], b: number[]): number;
  GLIBC_FLOOR: number[];
};

const readelf = findProgram(['/usr/bin/readelf']);
const haveReadelf = serverAvailable('readelf', readelf, 'apt-get install binutils');
// Built from the current native sources: older ones would test the past.
const built = ['x64', 'arm64'].every((arch) => prebuild.upToDate(arch));
if (!built) {
  // Outside CI, build them first: `node scripts/prebuild.js` (npm pack does too).
  serverAvailable('Prebuilt binaries as new as native/', null, 'node scripts/prebuild.js');
}

describe.runIf(haveReadelf && built)('the prebuilt binaries', () => {
  it.each([
    ['x64', 'Advanced Micro Devices X86-64'],
    ['arm64', 'AArch64'],
  ])('linux-%s: the right ELF machine, glibc symbols at most 2.28 (Node\'s floor)', (arch, machine) => {
    const result = prebuild.check(arch);
    expect(result.machine).toBe(machine);
    expect(result.glibc).not.toBeNull();
    expect(prebuild.compareVersions(result.glibc!.split('.').map(Number), [2, 28])).toBeLessThanOrEqual(0);
    expect(result.problems).toEqual([]);
    // Stripped: no symbol table beyond the dynamic one.
    const sections = execFileSync(readelf!, ['-S', '--wide', prebuild.prebuildPath(arch)], { encoding: 'utf8' });
    expect(sections).not.toMatch(/\s\.symtab\s/);
    expect(sections).toMatch(/\s\.dynsym\s/);
  });

  it('the version check flags what it must', () => {
    expect(prebuild.compareVersions([2, 28], prebuild.GLIBC_FLOOR)).toBe(0);
    expect(prebuild.compareVersions([2, 29], prebuild.GLIBC_FLOOR)).toBeGreaterThan(0);
    expect(prebuild.compareVersions([2, 2, 5], prebuild.GLIBC_FLOOR)).toBeLessThan(0);
    expect(prebuild.compareVersions([2, 17], prebuild.GLIBC_FLOOR)).toBeLessThan(0);
  });

  it(`linux-${process.arch} loads in this Node and is the binary the package picks without a build`, () => {
    const out = execFileSync(
      process.execPath,
      ['-e', "const s = require(process.argv[1]); console.log(s.supported, Object.keys(require.cache).filter((k) => k.endsWith('.node')).join())", root],
      { encoding: 'utf8', env: { ...process.env, PREBUILDS_ONLY: '1', SOCKSTATE_FORCE_FALLBACK: '' } },
    ).trim();
    expect(out).toBe(`true ${prebuild.prebuildPath(process.arch)}`);
  });
});

// An arm64 Node from the npm registry, pinned in .ci/node-lines/arm64, run
// by qemu-user with Debian's arm64 libc (from g++-aarch64-linux-gnu). A load
// check only: qemu-user does not emulate TCP_INFO fully, so what the probe
// reads there is not evidence of anything.
const qemu = findProgram(['/usr/bin/qemu-aarch64-static', '/usr/bin/qemu-aarch64']);
const arm64Node = findProgram([path.join(root, '.ci', 'node-lines', 'arm64', 'node_modules', 'node22-arm64', 'bin', 'node')]);
const arm64Libc = fs.existsSync('/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1') ? '/usr/aarch64-linux-gnu' : null;
const canEmulate =
  serverAvailable('qemu-user', qemu, 'apt-get install qemu-user-static') &&
  serverAvailable('An arm64 Node', arm64Node, 'cd .ci/node-lines/arm64 && npm ci --force') &&
  serverAvailable("Debian's arm64 libc", arm64Libc, 'apt-get install g++-aarch64-linux-gnu');

describe.runIf(canEmulate && built && process.arch === 'x64')('linux-arm64 under qemu-aarch64', () => {
  it('the arm64 prebuild is the one an arm64 Node picks, and it loads with every export', () => {
    const script =
      "const s = require(process.argv[1]); const b = Object.keys(require.cache).filter((k) => k.endsWith('.node'));" +
      'console.log(JSON.stringify({ arch: process.arch, supported: s.supported, reason: s.unsupportedReason, binaries: b }))';
    const r = spawnSync(qemu!, ['-L', arm64Libc!, arm64Node!, '-e', script, root], {
      encoding: 'utf8',
      timeout: 120_000,
      // build/Release holds this machine's x64 build: an arm64 Node must not try it.
      env: { ...process.env, PREBUILDS_ONLY: '1', SOCKSTATE_FORCE_FALLBACK: '' },
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      arch: 'arm64',
      supported: true,
      reason: null,
      binaries: [prebuild.prebuildPath('arm64')],
    });
  }, 180_000);
});
