import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The package as users get it: `npm pack` (whose prepack builds the
// prebuilds), installed from the tarball into a fresh project with
// --ignore-scripts and a PATH that holds only node and npm: no compiler,
// make or Python. One tarball and one install serve every test here but
// the last describe, which installs the same tarball as users do, with
// install scripts allowed, and installs again.
const root = path.join(__dirname, '..');
const tuple = `linux-${process.arch}`;
const BUILD_HINT = 'Build it from source (needs Python 3, make and a C++ compiler) with: node node_modules/sockstate/scripts/build.js';

let work: string;
let bin: string;
let app: string;
let packed: { files: { path: string }[]; filename: string };
let installLog: string;

/** The npm CLI script itself, so a PATH without /usr/bin can still run it. */
function npmCli(): string {
  const fromEnv = process.env.npm_execpath;
  if (fromEnv && /npm-cli\.js$/.test(fromEnv)) return fromEnv;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'npm');
    if (fs.existsSync(candidate)) return fs.realpathSync(candidate);
  }
  throw new Error('npm is not on PATH');
}

/** Runs node in the consumer project; `bare` limits PATH to node and npm. */
function run(args: string[], options: { env?: NodeJS.ProcessEnv; bare?: boolean } = {}) {
  const env = { ...process.env, ...options.env };
  delete env.SOCKSTATE_FORCE_FALLBACK;
  if (options.bare !== false) env.PATH = bin;
  const r = spawnSync(process.execPath, args, { cwd: app, encoding: 'utf8', env, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

const REPORT =
  "const s = require('sockstate'); console.log(JSON.stringify({ supported: s.supported, reason: s.unsupportedReason, " +
  "binaries: Object.keys(require.cache).filter((k) => k.endsWith('.node')) }))";

function report(env: NodeJS.ProcessEnv = {}): { supported: boolean; reason: string | null; binaries: string[] } {
  const r = run(['-e', REPORT], { env });
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout);
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-consumer-'));
  // Packed from a copy of the working tree, so that prepack's compile does
  // not rewrite lib/ under the other test files' feet. Timestamps are kept:
  // prepack rebuilds prebuilds only when a native source is newer.
  const stage = path.join(work, 'sockstate');
  const entries = ['package.json', 'tsconfig.build.json', 'README.md', 'LICENSE', 'binding.gyp', 'src', 'native', 'scripts', 'prebuilds'];
  for (const entry of entries) {
    const from = path.join(root, entry);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(stage, entry), { recursive: true, preserveTimestamps: true });
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(stage, 'node_modules'), 'dir');
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: stage,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // prepack's own output may precede npm's JSON.
  packed = JSON.parse(out.slice(out.search(/^\[/m)))[0];

  bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync(npmCli(), path.join(bin, 'npm'));

  app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  const install = spawnSync(
    process.execPath,
    [path.join(bin, 'npm'), 'install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', path.join(work, packed.filename)],
    { cwd: app, encoding: 'utf8', env: { ...process.env, PATH: bin }, timeout: 240_000 },
  );
  installLog = `${install.stdout}${install.stderr}`;
  if (install.status !== 0) throw new Error(`npm install failed:\n${installLog}`);
}, 300_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('holds lib/, the sources, both prebuilds and the build script; no build/, test/ or node_modules', () => {
    const files = packed.files.map((f) => f.path);
    const top = [...new Set(files.map((f) => f.split('/')[0]))].sort();
    // No binding.gyp at the root: npm would infer `install: node-gyp rebuild`
    // from it (see the last describe); scripts/build.js builds from the copy.
    expect(top).toEqual(['LICENSE', 'README.md', 'lib', 'native', 'package.json', 'prebuilds', 'scripts', 'src']);
    expect(files).toContain('prebuilds/linux-x64/sockstate.glibc.node');
    expect(files).toContain('prebuilds/linux-arm64/sockstate.glibc.node');
    expect(files.filter((f) => f.startsWith('prebuilds/')).sort()).toEqual([
      'prebuilds/binding.gyp',
      'prebuilds/linux-arm64/sockstate.glibc.node',
      'prebuilds/linux-x64/sockstate.glibc.node',
    ]);
    const shipped = fs.readFileSync(path.join(app, 'node_modules', 'sockstate', 'prebuilds', 'binding.gyp'), 'utf8');
    expect(shipped.replace(/^#.*\n/gm, '')).toBe(fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8'));
    expect(files.filter((f) => f.startsWith('scripts/'))).toEqual(['scripts/build.js']);
    expect(files).toContain('lib/index.js');
    expect(files).toContain('lib/index.d.ts');
  });

  it('its package.json runs nothing at install time', () => {
    const installed = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', 'sockstate', 'package.json'), 'utf8'));
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) expect(installed.scripts?.[hook]).toBeUndefined();
    expect(installed.gypfile).toBe(false);
    expect(fs.existsSync(path.join(app, 'node_modules', 'sockstate', 'binding.gyp'))).toBe(false);
    expect(installLog).not.toMatch(/sockstate/i);
  });
});

describe('installed with --ignore-scripts and no compiler', () => {
  it('the PATH holds no compiler, make or Python', () => {
    for (const tool of ['cc', 'gcc', 'g++', 'c++', 'clang', 'make', 'python3', 'python']) {
      expect(run(['-e', `require('node:child_process').execFileSync('${tool}', ['--version'])`]).status).toBe(1);
    }
  });

  it('supported === true, from the prebuilt binary; nothing was built', () => {
    const pkgDir = path.join(app, 'node_modules', 'sockstate');
    expect(report()).toEqual({
      supported: true,
      reason: null,
      binaries: [path.join(fs.realpathSync(pkgDir), 'prebuilds', tuple, 'sockstate.glibc.node')],
    });
    expect(fs.existsSync(path.join(pkgDir, 'build'))).toBe(false);
  });

  it("the README's first example runs as documented", () => {
    fs.copyFileSync(path.join(root, 'examples', 'peer-closed.js'), path.join(app, 'peer-closed.js'));
    const r = run(['peer-closed.js']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^before: open \{ rtt: \d+, sndCwnd: \d+, bytesAcked: 1n \}/);
    expect(r.stdout).toContain("Node says: open | sockstate says: {\n  status: 'peerClosed',\n  tcpState: 'CLOSE_WAIT',");
  });

  it('examples/check-install.js: the native probe is loaded', () => {
    fs.copyFileSync(path.join(root, 'examples', 'check-install.js'), path.join(app, 'check-install.js'));
    expect(run(['check-install.js'])).toEqual({ status: 0, stdout: 'sockstate: native probe loaded', stderr: '' });
  });

  it('examples/esm-import.mjs: named and default imports from ESM', () => {
    fs.copyFileSync(path.join(root, 'examples', 'esm-import.mjs'), path.join(app, 'esm-import.mjs'));
    expect(run(['esm-import.mjs'])).toEqual({ status: 0, stdout: 'closed true', stderr: '' });
  });

  // The .d.ts without skipLibCheck, for every target, is test/package.test.ts's.
  it('examples/default-import.ts: compiled to CommonJS without esModuleInterop, runs', () => {
    fs.copyFileSync(path.join(root, 'examples', 'default-import.ts'), path.join(app, 'default-import.ts'));
    const types = path.join(app, 'node_modules', '@types');
    if (!fs.existsSync(types)) fs.symlinkSync(path.join(root, 'node_modules', '@types'), types, 'dir');
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const compiled = run([tsc, '--strict', '--skipLibCheck', '--module', 'commonjs', '--target', 'es2022', '--types', 'node', '--outDir', 'out', 'default-import.ts']);
    expect(compiled).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(fs.readFileSync(path.join(app, 'out', 'default-import.js'), 'utf8')).toContain('sockstate_1.default.connectionState');
    expect(run(['out/default-import.js'])).toEqual({ status: 0, stdout: 'closed flags\nno fd yet: ERR_SOCKSTATE_NO_FD', stderr: '' });
  }, 120_000);

  it('named and default imports from ESM', () => {
    const r = run([
      '--input-type=module',
      '-e',
      "import sockstate, { supported, connectionState } from 'sockstate'; console.log(supported, sockstate.connectionState === connectionState)",
    ]);
    expect(r).toEqual({ status: 0, stdout: 'true true', stderr: '' });
  });
});

describe('where no prebuilt binary can load', () => {
  const SCRIPT =
    "const net = require('node:net'); const s = require('sockstate'); " +
    'let err; try { s.tcpInfo(new net.Socket()); } catch (e) { err = e; } ' +
    'console.log(JSON.stringify({ supported: s.supported, reason: s.unsupportedReason, code: err.code, message: err.message, paths: err.cause.paths }))';

  it('LIBC=musl: says no prebuild fits, and the one command that builds one', () => {
    const r = run(['-e', SCRIPT], { env: { LIBC: 'musl' } });
    expect(r.stderr).toBe('');
    const reason =
      `sockstate has no prebuilt native probe for ${tuple} with musl libc, and none was built from source. ` +
      'Build it (needs Python 3, make and a C++ compiler) with: node node_modules/sockstate/scripts/build.js';
    const pkgDir = fs.realpathSync(path.join(app, 'node_modules', 'sockstate'));
    expect(JSON.parse(r.stdout)).toEqual({
      supported: false,
      reason,
      code: 'ERR_SOCKSTATE_UNSUPPORTED',
      message: `tcpInfo() needs the native probe, which is not available: ${reason}`,
      // The folders searched sit on the cause, not in the message.
      paths: [path.join(pkgDir, 'build', 'Release'), path.join(pkgDir, 'build', 'Debug'), path.join(pkgDir, 'prebuilds', tuple)],
    });
  });

  it('examples/check-install.js says why, and the command', () => {
    fs.copyFileSync(path.join(root, 'examples', 'check-install.js'), path.join(app, 'check-install.js'));
    expect(run(['check-install.js'], { env: { LIBC: 'musl' } })).toEqual({
      status: 0,
      stdout:
        `sockstate: answering from socket flags only. sockstate has no prebuilt native probe for ${tuple} with musl libc, ` +
        'and none was built from source. Build it (needs Python 3, make and a C++ compiler) with: node node_modules/sockstate/scripts/build.js',
      stderr: '',
    });
  });

  it('the demo says why it cannot run, and what still works', () => {
    const r = run(['node_modules/sockstate/lib/cli/index.js', 'demo'], { env: { LIBC: 'musl', NO_COLOR: '1' } });
    expect(r.status).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines).toContain(
      `The native probe is not available: sockstate has no prebuilt native probe for ${tuple} with musl libc, and none was built from source. ` +
        'Build it (needs Python 3, make and a C++ compiler) with: node node_modules/sockstate/scripts/build.js',
    );
    expect(lines.slice(-3).join(' ')).toBe(
      "The demo sets what Node's flags say beside what the kernel says, and only the native probe reads the " +
        'kernel, so it has nothing to show until the probe loads. The library itself still works without it, ' +
        "from Node's socket flags (supported === false): see \"Using it in your project\" in the README.",
    );
  });

  it('a corrupted prebuild: says which file failed and why, and the command', () => {
    const file = path.join(app, 'node_modules', 'sockstate', 'prebuilds', tuple, 'sockstate.glibc.node');
    const good = fs.readFileSync(file);
    try {
      fs.writeFileSync(file, 'not an ELF file\n'.repeat(8));
      const r = run(['-e', SCRIPT]);
      expect(r.stderr).toBe('');
      const out = JSON.parse(r.stdout);
      expect(out.reason).toBe(`sockstate's native probe prebuilds/${tuple}/sockstate.glibc.node failed to load (invalid ELF header). ${BUILD_HINT}`);
      expect(out.message).toBe(`tcpInfo() needs the native probe, which is not available: ${out.reason}`);
      expect(out.code).toBe('ERR_SOCKSTATE_UNSUPPORTED');
    } finally {
      fs.writeFileSync(file, good);
    }
    expect(report().supported).toBe(true);
  });

  it('the build command, without a compiler, says what to install', () => {
    const r = run(['node_modules/sockstate/scripts/build.js'], { env: { LIBC: 'musl' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'sockstate: building the native probe needs Python 3, make, a C++ compiler. Install them with ' +
        '`apt-get install -y python3 make g++` (or your system\'s equivalent) and run this again.',
    );
  });

  it('the build command, with a compiler, fixes it: the build from source loads', () => {
    const r = run(['node_modules/sockstate/scripts/build.js'], { env: { LIBC: 'musl' }, bare: false });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.split('\n').at(-1)).toBe('sockstate: built node_modules/sockstate/build/Release/sockstate.node; supported === true.');
    const pkgDir = fs.realpathSync(path.join(app, 'node_modules', 'sockstate'));
    expect(report({ LIBC: 'musl' })).toEqual({
      supported: true,
      reason: null,
      binaries: [path.join(pkgDir, 'build', 'Release', 'sockstate.node')],
    });
  }, 180_000);
});

// npm 11 warns on every install about a dependency's install scripts that
// package.json's allowScripts does not cover, and npm takes a binding.gyp at
// a dependency's root for `install: node-gyp rebuild` whenever it reads that
// dependency from a lockfile: the lockfile does not keep "gypfile": false
// (@npmcli/arborist's shrinkwrap.js records no gypfile; install-scripts.js
// and rebuild.js then see `gypfile !== false` and stat binding.gyp). So the
// first install was quiet, every later `npm install` warned, and `npm ci`
// compiled (and failed without a compiler). The package ships no root
// binding.gyp; these tests install as users do, install scripts allowed,
// with no compiler or Python on PATH.
describe('installed as users do, then installed again', () => {
  let users: string;
  const npm = (cwd: string, args: string[]) => {
    const r = spawnSync(process.execPath, [path.join(bin, 'npm'), ...args, '--prefer-offline', '--no-audit', '--no-fund'], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, PATH: bin },
      timeout: 240_000,
    });
    return { status: r.status, log: `${r.stdout}${r.stderr}` };
  };
  /** Whether this npm has allowScripts (npm 11): `npm install-scripts ls` exists. */
  const hasAllowScripts = () => npm(users, ['install-scripts', 'ls']).status === 0;

  beforeAll(() => {
    users = path.join(work, 'users-app');
    fs.mkdirSync(users);
    fs.writeFileSync(path.join(users, 'package.json'), JSON.stringify({ name: 'users-app', private: true }));
  });

  it('npm install <tarball>, then npm install and npm ci: no install-scripts warning, nothing built, the prebuild loads', () => {
    const steps = [['install', path.join(work, packed.filename)], ['install'], ['ci']];
    for (const args of steps) {
      const r = npm(users, args);
      expect(r.status, `npm ${args[0]}: ${r.log}`).toBe(0);
      expect(r.log).not.toMatch(/install-scripts|allowScripts|node-gyp|gyp (info|ERR)/);
    }
    const lock = JSON.parse(fs.readFileSync(path.join(users, 'package-lock.json'), 'utf8'));
    expect(lock.packages['node_modules/sockstate'].hasInstallScript).toBeUndefined();
    const pkgDir = path.join(users, 'node_modules', 'sockstate');
    expect(fs.existsSync(path.join(pkgDir, 'build'))).toBe(false);
    const r = spawnSync(process.execPath, ['-e', REPORT], { cwd: users, encoding: 'utf8', env: { ...process.env, PATH: bin, SOCKSTATE_FORCE_FALLBACK: '' } });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      supported: true,
      reason: null,
      binaries: [path.join(fs.realpathSync(pkgDir), 'prebuilds', tuple, 'sockstate.glibc.node')],
    });
    if (hasAllowScripts()) expect(npm(users, ['install-scripts', 'ls']).log.trim()).toBe('No packages with unreviewed install scripts.');
  }, 300_000);

  it('control: this npm does warn, on the second install, for a root binding.gyp despite "gypfile": false', (ctx) => {
    if (!hasAllowScripts()) {
      ctx.skip(`npm ${execFileSync(process.execPath, [path.join(bin, 'npm'), '--version'], { encoding: 'utf8' }).trim()} has no allowScripts`);
    }
    const pkg = path.join(work, 'gyp-control');
    fs.mkdirSync(pkg);
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'gyp-control', version: '1.0.0', gypfile: false }));
    fs.writeFileSync(path.join(pkg, 'binding.gyp'), '{ "targets": [] }\n');
    const tarball = execFileSync(process.execPath, [path.join(bin, 'npm'), 'pack', '--pack-destination', work], {
      cwd: pkg,
      encoding: 'utf8',
      env: { ...process.env, PATH: bin },
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim().split('\n').at(-1)!;
    const control = path.join(work, 'control-app');
    fs.mkdirSync(control);
    fs.writeFileSync(path.join(control, 'package.json'), JSON.stringify({ name: 'control-app', private: true }));
    const first = npm(control, ['install', path.join(work, tarball)]);
    expect(first.status, first.log).toBe(0);
    expect(first.log).not.toMatch(/install-scripts/);
    const second = npm(control, ['install']);
    expect(second.status, second.log).toBe(0);
    expect(second.log).toContain('gyp-control@1.0.0 (install: node-gyp rebuild)');
  }, 120_000);
});
