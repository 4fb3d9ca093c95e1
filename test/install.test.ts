import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  ARCH_ENV: string;
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

// `npm pack` runs scripts/prebuild.js (prepack). On a machine without the
// arm64 cross compiler it stops before building anything and names the
// package to install, or, with SOCKSTATE_PREBUILD_ARCH=x64, packs without
// the arm64 binary and says what that costs. Run in a copy of the sources,
// with a PATH that has node, readelf and strip but no aarch64-linux-gnu-*
// (and node not in /usr/bin, where the build would find them through it).
describe.runIf(haveReadelf && built)('scripts/prebuild.js without the arm64 cross compiler', () => {
  let work: string;
  let stage: string;
  let bin: string;
  const ARM64 = 'prebuilds/linux-arm64/sockstate.glibc.node';
  const MISSING =
    `prebuild: cannot build ${ARM64}: aarch64-linux-gnu-gcc, aarch64-linux-gnu-g++, aarch64-linux-gnu-ar, aarch64-linux-gnu-strip not found on PATH. ` +
    'Install the cross compiler (Debian/Ubuntu: apt-get install g++-aarch64-linux-gnu), or pack without it: ' +
    'SOCKSTATE_PREBUILD_ARCH=x64 npm pack (the package then lacks the linux-arm64 binary, and its users must build from source).';

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-prebuild-test-'));
    bin = path.join(work, 'bin');
    fs.mkdirSync(bin);
    try {
      fs.linkSync(process.execPath, path.join(bin, 'node'));
    } catch {
      fs.copyFileSync(process.execPath, path.join(bin, 'node'));
    }
    fs.symlinkSync(readelf!, path.join(bin, 'readelf'));
    const strip = findProgram(['/usr/bin/strip']);
    if (strip) fs.symlinkSync(strip, path.join(bin, 'strip'));
    stage = path.join(work, 'sockstate');
    // The up-to-date x64 prebuild, timestamps kept, so that only arm64 needs building.
    for (const entry of ['package.json', 'binding.gyp', 'native', 'scripts', 'prebuilds/linux-x64']) {
      fs.cpSync(path.join(root, entry), path.join(stage, entry), { recursive: true, preserveTimestamps: true });
    }
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(stage, 'node_modules'), 'dir');
  });
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const prebuildScript = (env: NodeJS.ProcessEnv = {}) => {
    const r = spawnSync(path.join(bin, 'node'), ['scripts/prebuild.js'], {
      cwd: stage,
      encoding: 'utf8',
      env: { ...process.env, PATH: bin, [prebuild.ARCH_ENV]: '', ...env },
      timeout: 120_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('the PATH has no aarch64-linux-gnu-gcc, the running node included', () => {
    const r = spawnSync(path.join(bin, 'node'), ['-e', 'console.log(process.execPath)'], { encoding: 'utf8', env: { PATH: bin } });
    expect(path.dirname(r.stdout.trim())).toBe(bin);
    expect(fs.readdirSync(bin).sort()).toEqual(['node', 'readelf', 'strip']);
  });

  it('fails at once, naming the package to install and the way to pack without arm64; builds nothing', () => {
    const started = Date.now();
    const r = prebuildScript();
    expect(r).toEqual({ status: 1, stdout: '', stderr: `${MISSING}\n` });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(fs.existsSync(path.join(stage, ARM64))).toBe(false);
  });

  it('SOCKSTATE_PREBUILD_ARCH=x64: drops a stale arm64 binary, warns what users lose, checks x64, exits 0', () => {
    // An arm64 binary older than the sources must not be packed.
    fs.mkdirSync(path.dirname(path.join(stage, ARM64)), { recursive: true });
    fs.writeFileSync(path.join(stage, ARM64), 'stale');
    fs.utimesSync(path.join(stage, ARM64), new Date(2000, 0, 1), new Date(2000, 0, 1));
    const r = prebuildScript({ [prebuild.ARCH_ENV]: 'x64' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.split('\n')).toEqual([
      'prebuild: warning: no linux-arm64 binary (SOCKSTATE_PREBUILD_ARCH=x64): a package packed now makes linux-arm64 users build from source. ' +
        'Install g++-aarch64-linux-gnu and pack without SOCKSTATE_PREBUILD_ARCH for a complete package.',
      expect.stringMatching(/^prebuild: prebuilds\/linux-x64\/sockstate\.glibc\.node: Advanced Micro Devices X86-64, highest GLIBC_2\.[0-9.]+, GLIBCXX_/),
      '',
    ]);
    expect(fs.existsSync(path.dirname(path.join(stage, ARM64)))).toBe(false);
    expect(fs.readdirSync(path.join(stage, 'prebuilds')).sort()).toEqual(['binding.gyp', 'linux-x64']);
  });

  it('an unknown architecture is refused', () => {
    expect(prebuildScript({ [prebuild.ARCH_ENV]: 'riscv64' })).toEqual({
      status: 1,
      stdout: '',
      stderr: 'prebuild: unknown architecture riscv64: expected x64 or arm64\n',
    });
  });

  it("npm pack's prepack runs this script", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.prepack).toMatch(/&& node scripts\/prebuild\.js$/);
  });
});
