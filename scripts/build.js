#!/usr/bin/env node
'use strict';
// Builds sockstate's native probe from source, for platforms the shipped
// prebuilds do not cover (musl/Alpine, other architectures) or after
// changing native/. Nothing runs this at install time.
//
//   node node_modules/sockstate/scripts/build.js   (in a project using sockstate)
//   node scripts/build.js [--if-missing]           (in the sockstate repository)
//
// --if-missing builds only when no binary (a build or a fitting prebuild)
// loads. Needs Python 3, make and a C++ compiler; node-gyp comes from the
// package's own dependencies when present, else from the one bundled with npm.
//
// In the repository, node-gyp builds in place from binding.gyp. An installed
// package has no binding.gyp at its root (npm would take it for an install
// script, see scripts/prebuild.js) but its copy, prebuilds/binding.gyp: the
// build runs in a temporary folder from that copy and native/, and its
// binary is copied to build/Release, where the loader looks first.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');

function fail(message) {
  console.error(`sockstate: ${message}`);
  process.exit(1);
}

function onPath(names) {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const name of names) {
    for (const dir of dirs) {
      try {
        fs.accessSync(path.join(dir, name), fs.constants.X_OK);
        return name;
      } catch {
        // not in this folder
      }
    }
  }
  return null;
}

/** Whether `require('sockstate')` in a fresh process has its native probe. */
function probeLoads() {
  const r = spawnSync(
    process.execPath,
    ['-e', 'const s = require(process.argv[1]); process.stdout.write(JSON.stringify([s.supported, s.unsupportedReason]))', root],
    { encoding: 'utf8', env: { ...process.env, SOCKSTATE_FORCE_FALLBACK: '' } },
  );
  if (r.status !== 0) return { supported: false, reason: (r.stderr || '').trim().split('\n')[0] };
  const [supported, reason] = JSON.parse(r.stdout);
  return { supported, reason };
}

function findNodeGyp() {
  try {
    return require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
  } catch {
    // not installed alongside: use npm's own copy
  }
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath) {
    candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const prefix = path.join(path.dirname(process.execPath), '..');
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => fs.existsSync(c)) ?? null;
}

function main(argv) {
  const libFile = path.join(root, 'lib', 'index.js');
  if (argv.includes('--if-missing') && fs.existsSync(libFile) && probeLoads().supported) return;
  if (process.platform !== 'linux') fail(`the native probe is Linux-only; there is nothing to build on ${process.platform}.`);

  const missing = [];
  if (!onPath(['python3', 'python'])) missing.push('Python 3');
  if (!onPath(['make'])) missing.push('make');
  if (!(process.env.CXX && onPath([process.env.CXX])) && !onPath(['c++', 'g++', 'clang++'])) missing.push('a C++ compiler');
  if (missing.length > 0) {
    const alpine = fs.existsSync('/etc/alpine-release');
    fail(
      `building the native probe needs ${missing.join(', ')}. Install them with ` +
        `\`${alpine ? 'apk add build-base python3' : 'apt-get install -y python3 make g++'}\` (or your system's equivalent) and run this again.`,
    );
  }
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) fail('building the native probe needs node-gyp, which npm bundles; install it with `npm install -g node-gyp` and run this again.');

  const args = [nodeGyp, 'rebuild'];
  // Node-API headers next to the running node, when there, need no download.
  const nodedir = path.join(path.dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${path.resolve(nodedir)}`);
  }
  const env = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` };
  const nodeGypRebuild = (cwd) => {
    const r = spawnSync(process.execPath, args, { cwd, stdio: 'inherit', env });
    if (r.error) fail(`node-gyp did not start: ${r.error.message}`);
    if (r.status !== 0) fail('node-gyp failed to build the native probe (its output is above).');
  };
  if (fs.existsSync(path.join(root, 'binding.gyp'))) {
    nodeGypRebuild(root);
  } else {
    const shipped = path.join(root, 'prebuilds', 'binding.gyp');
    if (!fs.existsSync(shipped)) fail(`found neither ${path.join(root, 'binding.gyp')} nor ${shipped}: this copy of sockstate cannot be built.`);
    const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-build-'));
    try {
      fs.copyFileSync(shipped, path.join(stage, 'binding.gyp'));
      fs.cpSync(path.join(root, 'native'), path.join(stage, 'native'), { recursive: true });
      // binding.gyp asks node-addon-api (a dependency, wherever npm put it) for its gyp target.
      const addonApi = path.dirname(require.resolve('node-addon-api/package.json', { paths: [root] }));
      fs.symlinkSync(path.dirname(addonApi), path.join(stage, 'node_modules'), 'dir');
      nodeGypRebuild(stage);
      fs.mkdirSync(path.join(root, 'build', 'Release'), { recursive: true });
      fs.copyFileSync(path.join(stage, 'build', 'Release', 'sockstate.node'), path.join(root, 'build', 'Release', 'sockstate.node'));
    } finally {
      fs.rmSync(stage, { recursive: true, force: true });
    }
  }
  if (fs.existsSync(libFile)) {
    const { supported, reason } = probeLoads();
    if (!supported) fail(`the native probe was built but does not load: ${reason}`);
  }
  console.log(`sockstate: built ${path.relative(process.cwd(), path.join(root, 'build', 'Release', 'sockstate.node'))}; supported === true.`);
}

main(process.argv.slice(2));
