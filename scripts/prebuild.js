#!/usr/bin/env node
'use strict';
// Builds the prebuilt binaries shipped in the package: one Node-API build
// per Linux architecture (glibc), into prebuilds/<platform>-<arch>/, where
// node-gyp-build finds them at run time. Run by `npm pack` (prepack) and by
// CI; never at install time.
//
//   node scripts/prebuild.js [--force] [--arch x64|arm64 ...] [--check]
//
// --force rebuilds even when the binaries are newer than every source;
// --check only verifies existing binaries (architecture, glibc floor).
// SOCKSTATE_PREBUILD_ARCH=x64 (the way to pass --arch through `npm pack`)
// builds only the architectures named, comma-separated, and packs without
// the others, with a warning: for a contributor without the arm64 cross
// compiler. Without it, a missing cross compiler is an error that names the
// package to install, so no tarball silently lacks a binary.
//
// It also copies binding.gyp to prebuilds/binding.gyp, which the package
// ships in its stead: npm takes a binding.gyp at a dependency's root for an
// implicit `install: node-gyp rebuild` whenever it reads the dependency from
// a lockfile (which does not record "gypfile": false), so shipping one
// there makes every later `npm install` warn about an unreviewed install
// script and `npm ci` compile. scripts/build.js builds from the copy.
//
// The build runs in a temporary copy of binding.gyp and native/, because
// prebuildify runs `node-gyp rebuild`, which would wipe and reconfigure the
// working tree's build/ (the development build, possibly for the host).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const { name } = require(path.join(root, 'package.json'));

/** Node's own floor for glibc (Node 18+ binaries need 2.28). */
const GLIBC_FLOOR = [2, 28];

/** Per architecture: the ELF machine readelf reports, the cross tools and the Debian package that has them. */
const TARGETS = {
  x64: { machine: 'Advanced Micro Devices X86-64', prefix: '', package: 'g++ make' },
  arm64: { machine: 'AArch64', prefix: 'aarch64-linux-gnu-', package: 'g++-aarch64-linux-gnu' },
};

/** The environment variable that limits the architectures built (comma-separated), for `npm pack`. */
const ARCH_ENV = 'SOCKSTATE_PREBUILD_ARCH';

/** Where the package ships its copy of binding.gyp (see the header). */
function shippedGypPath(dir = root) {
  return path.join(dir, 'prebuilds', 'binding.gyp');
}

const SHIPPED_GYP_NOTE =
  '# Copied from binding.gyp by scripts/prebuild.js. The package ships it here, not at its root,\n' +
  '# because npm runs `node-gyp rebuild` for a dependency with a binding.gyp at its root\n' +
  '# (after a lockfile drops "gypfile": false). scripts/build.js builds from it.\n';

function writeShippedGyp() {
  const file = shippedGypPath();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, SHIPPED_GYP_NOTE + fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8'));
}

/**
 * Whether `name` is an executable on the PATH the build sees: this PATH
 * after the running node's folder, which build() (and prebuildify) put first.
 */
function onPath(name) {
  for (const dir of [path.dirname(process.execPath), ...(process.env.PATH ?? '').split(path.delimiter)].filter(Boolean)) {
    try {
      fs.accessSync(path.join(dir, name), fs.constants.X_OK);
      return true;
    } catch {
      // not in this folder
    }
  }
  return false;
}

/** The tools a build for `arch` runs that are not on PATH. */
function missingTools(arch) {
  const { prefix } = TARGETS[arch];
  // The native build's own compiler, make and Python node-gyp finds by itself
  // and reports; prebuildify's --strip needs strip.
  const tools = prefix ? ['gcc', 'g++', 'ar', 'strip'].map((t) => `${prefix}${t}`) : ['strip'];
  return tools.filter((t) => !onPath(t));
}

/** Where a prebuild for `arch` lands. */
function prebuildPath(arch, dir = root) {
  return path.join(dir, 'prebuilds', `linux-${arch}`, `${name}.glibc.node`);
}

function newestSource() {
  let newest = 0;
  const visit = (p) => {
    const st = fs.statSync(p);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) visit(path.join(p, e));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['binding.gyp', 'native', 'scripts/prebuild.js']) visit(path.join(root, p));
  return newest;
}

function upToDate(arch) {
  try {
    return fs.statSync(prebuildPath(arch)).mtimeMs >= newestSource();
  } catch {
    return false;
  }
}

/** Headers for Node-API: those next to the running node when present, so no download is needed. */
function nodedir() {
  const candidates = [process.env.npm_config_nodedir, path.join(path.dirname(process.execPath), '..')];
  for (const dir of candidates) {
    if (dir && fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h'))) return path.resolve(dir);
  }
  return undefined;
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...options });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  }
  return r.stdout;
}

function build(arch) {
  const { prefix } = TARGETS[arch];
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-prebuild-${arch}-`));
  try {
    fs.cpSync(path.join(root, 'binding.gyp'), path.join(stage, 'binding.gyp'));
    fs.cpSync(path.join(root, 'native'), path.join(stage, 'native'), { recursive: true });
    fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify({ name, private: true }));
    // binding.gyp asks node-addon-api for its gyp target, relative to the cwd.
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(stage, 'node_modules'), 'dir');
    const env = { ...process.env, PREBUILD_STRIP_BIN: `${prefix}strip` };
    if (prefix) {
      Object.assign(env, {
        CC: `${prefix}gcc`,
        CXX: `${prefix}g++`,
        LINK: `${prefix}g++`,
        AR: `${prefix}ar`,
      });
    }
    const dir = nodedir();
    if (dir) env.npm_config_nodedir = dir;
    const prebuildify = require.resolve('prebuildify/bin.js', { paths: [root] });
    env.PREBUILD_NODE_GYP = path.join(root, 'node_modules', '.bin', 'node-gyp');
    // node-gyp's scripts start with `#!/usr/bin/env node`: the node running this.
    env.PATH = `${path.dirname(process.execPath)}${path.delimiter}${env.PATH ?? ''}`;
    // Node-API: one build serves every Node line; the headers are this node's.
    const target = `node@${process.versions.node}`;
    run(
      process.execPath,
      [prebuildify, '--napi', '--strip', '--tag-libc', '--target', target, '--arch', arch, '--platform', 'linux', '--out', root, stage],
      { cwd: stage, env, stdio: ['ignore', 'pipe', 'pipe'], shell: false },
    );
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

function compareVersions(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The highest `<prefix><version>` symbol version in readelf -V output, as numbers. */
function highestVersion(readelfV, prefix) {
  let highest = null;
  for (const m of readelfV.matchAll(new RegExp(`Name: ${prefix}([0-9.]+)`, 'g'))) {
    const v = m[1].split('.').map(Number);
    if (!highest || compareVersions(v, highest) > 0) highest = v;
  }
  return highest;
}

/**
 * What a binary needs from the system: its ELF machine and the highest
 * GLIBC_ and GLIBCXX_ symbol versions it references.
 */
function inspectBinary(file) {
  const header = run('readelf', ['-h', file]);
  const machine = /Machine:\s+(.+)/.exec(header)?.[1].trim();
  const versions = run('readelf', ['-V', '--wide', file]);
  const glibc = highestVersion(versions, 'GLIBC_');
  const glibcxx = highestVersion(versions, 'GLIBCXX_');
  return { machine, glibc: glibc && glibc.join('.'), glibcxx: glibcxx && glibcxx.join('.') };
}

function check(arch) {
  const file = prebuildPath(arch);
  const info = inspectBinary(file);
  const problems = [];
  if (info.machine !== TARGETS[arch].machine) problems.push(`machine is ${info.machine}, not ${TARGETS[arch].machine}`);
  if (info.glibc === null) problems.push('references no GLIBC_ symbol version: not a glibc build?');
  else if (compareVersions(info.glibc.split('.').map(Number), GLIBC_FLOOR) > 0) {
    problems.push(`needs GLIBC_${info.glibc}, above Node's floor of ${GLIBC_FLOOR.join('.')}`);
  }
  return { arch, file: path.relative(root, file), ...info, problems };
}

function main(argv) {
  const force = argv.includes('--force');
  const checkOnly = argv.includes('--check');
  const archs = [];
  for (let i = 0; i < argv.length; i++) if (argv[i] === '--arch') archs.push(argv[++i]);
  const fromEnv = (process.env[ARCH_ENV] ?? '').split(',').map((a) => a.trim()).filter(Boolean);
  for (const a of [...archs, ...fromEnv]) if (!TARGETS[a]) throw new Error(`unknown architecture ${a}: expected ${Object.keys(TARGETS).join(' or ')}`);
  if (archs.length === 0) archs.push(...(fromEnv.length > 0 ? fromEnv : Object.keys(TARGETS)));
  if (!checkOnly) {
    writeShippedGyp();
    // Left out on purpose (SOCKSTATE_PREBUILD_ARCH): no stale binary may be
    // packed in its place, and the packer is told what users lose.
    if (fromEnv.length > 0) {
      for (const arch of Object.keys(TARGETS).filter((a) => !archs.includes(a))) {
        const stale = path.dirname(prebuildPath(arch));
        if (fs.existsSync(stale) && !upToDate(arch)) fs.rmSync(stale, { recursive: true, force: true });
        if (!fs.existsSync(stale)) {
          console.error(
            `prebuild: warning: no linux-${arch} binary (${ARCH_ENV}=${process.env[ARCH_ENV]}): a package packed now makes ` +
              `linux-${arch} users build from source. Install ${TARGETS[arch].package} and pack without ${ARCH_ENV} for a complete package.`,
          );
        }
      }
    }
    // Every missing tool first, before building anything.
    const lacking = archs.filter((arch) => (force || !upToDate(arch)) && missingTools(arch).length > 0);
    if (lacking.length > 0) {
      const others = Object.keys(TARGETS).filter((a) => !lacking.includes(a));
      const lines = lacking.map((arch) => {
        const what = TARGETS[arch].prefix ? 'the cross compiler' : 'the build tools';
        const without = others.length > 0
          ? `, or pack without it: ${ARCH_ENV}=${others.join(',')} npm pack (the package then lacks the linux-${arch} binary, and its users must build from source)`
          : '';
        return (
          `cannot build ${path.relative(root, prebuildPath(arch))}: ${missingTools(arch).join(', ')} not found on PATH. ` +
          `Install ${what} (Debian/Ubuntu: apt-get install ${TARGETS[arch].package})${without}.`
        );
      });
      throw new Error(lines.join('\nprebuild: '));
    }
  }
  let failed = false;
  for (const arch of archs) {
    if (!checkOnly && (force || !upToDate(arch))) {
      const started = Date.now();
      build(arch);
      console.error(`prebuild: built ${path.relative(root, prebuildPath(arch))} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    const result = check(arch);
    console.error(`prebuild: ${result.file}: ${result.machine}, highest GLIBC_${result.glibc}, GLIBCXX_${result.glibcxx}`);
    for (const p of result.problems) {
      console.error(`prebuild: ${result.file}: ${p}`);
      failed = true;
    }
  }
  if (failed) process.exitCode = 1;
}

module.exports = { prebuildPath, shippedGypPath, upToDate, inspectBinary, check, compareVersions, missingTools, GLIBC_FLOOR, TARGETS, ARCH_ENV };

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`prebuild: ${err.message}`);
    process.exitCode = 1;
  }
}
