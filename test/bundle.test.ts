import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverAvailable } from './helpers/programs';

// An app bundled with esbuild (platform node): the bundle holds sockstate's
// JavaScript, and the loader, no longer in the package's lib/, looks for the
// binary beside the bundle. The settings the README gives, tested as
// written: copy node_modules/sockstate/prebuilds next to the bundle, or
// keep sockstate out of the bundle with --external:sockstate. Every bundle
// runs from another folder than the app's.
const root = path.join(__dirname, '..');
const tuple = `linux-${process.arch}`;
const esbuild = path.join(root, 'node_modules', '.bin', 'esbuild');
const prebuilt = path.join(root, 'prebuilds', tuple, 'sockstate.glibc.node');
const ready =
  process.platform === 'linux' &&
  serverAvailable('esbuild (a devDependency)', fs.existsSync(esbuild) ? esbuild : null, 'npm install') &&
  serverAvailable(`The ${tuple} prebuild`, fs.existsSync(prebuilt) ? prebuilt : null, 'node scripts/prebuild.js');

// The app: what loaded, and one answer on a real loopback connection.
const APP_CJS = `
const net = require('node:net');
const { supported, unsupportedReason, connectionState } = require('sockstate');
const server = net.createServer().listen(0, '127.0.0.1', () => {
  const socket = net.connect(server.address().port, '127.0.0.1', () => {
    const state = connectionState(socket);
    const binaries = Object.keys(require.cache).filter((k) => k.endsWith('.node'));
    console.log(JSON.stringify({ supported, unsupportedReason, binaries, status: state.status, source: state.source }));
    socket.destroy();
    server.close();
  });
});
`;
const APP_ESM = `
import * as net from 'node:net';
import { supported, unsupportedReason, connectionState } from 'sockstate';
const server = net.createServer().listen(0, '127.0.0.1', () => {
  const socket = net.connect(server.address().port, '127.0.0.1', () => {
    const state = connectionState(socket);
    console.log(JSON.stringify({ supported, unsupportedReason, status: state.status, source: state.source }));
    socket.destroy();
    server.close();
  });
});
`;

describe.runIf(ready)('an app bundled with esbuild', () => {
  let work: string;
  let app: string;
  let elsewhere: string;

  /** esbuild as a user runs it, in the app's folder. */
  const bundle = (args: string[]) =>
    execFileSync(esbuild, ['--bundle', '--platform=node', '--log-level=warning', ...args], { cwd: app, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  /** Runs a bundle from another folder: cwd is `elsewhere`. */
  const run = (file: string) => {
    const r = spawnSync(process.execPath, [file], {
      cwd: elsewhere,
      encoding: 'utf8',
      env: { ...process.env, SOCKSTATE_FORCE_FALLBACK: '' },
      timeout: 30_000,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    return JSON.parse(r.stdout);
  };

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-bundle-'));
    app = path.join(work, 'app');
    elsewhere = path.join(work, 'elsewhere');
    fs.mkdirSync(elsewhere);
    // sockstate as installed: package.json, lib/, prebuilds/, and its loader dependency.
    const pkg = path.join(app, 'node_modules', 'sockstate');
    fs.mkdirSync(pkg, { recursive: true });
    fs.copyFileSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
    fs.cpSync(path.join(root, 'lib'), path.join(pkg, 'lib'), { recursive: true });
    fs.cpSync(path.join(root, 'prebuilds'), path.join(pkg, 'prebuilds'), { recursive: true });
    fs.symlinkSync(path.join(root, 'node_modules', 'node-gyp-build'), path.join(app, 'node_modules', 'node-gyp-build'), 'dir');
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'bundled-app', private: true }));
    fs.writeFileSync(path.join(app, 'app.js'), APP_CJS);
    fs.writeFileSync(path.join(app, 'app.mjs'), APP_ESM);
  });
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('bundled as is: it runs, answers from flags, and says the setting that fixes it', () => {
    bundle(['app.js', '--outfile=dist/app.js']);
    const moved = path.join(elsewhere, 'plain');
    fs.cpSync(path.join(app, 'dist'), moved, { recursive: true });
    expect(run(path.join(moved, 'app.js'))).toEqual({
      supported: false,
      unsupportedReason:
        `sockstate is bundled (into ${path.join(moved, 'app.js')}) and finds no native probe for ${tuple} with glibc libc beside the bundle. ` +
        `Copy node_modules/sockstate/prebuilds to ${path.join(moved, 'prebuilds')} (it needs prebuilds/${tuple}), ` +
        'or keep sockstate out of the bundle (esbuild: --external:sockstate).',
      binaries: [],
      status: 'open',
      source: 'flags',
    });
  });

  it('with node_modules/sockstate/prebuilds copied beside the bundle: the addon loads, wherever the bundle goes', () => {
    bundle(['app.js', '--outfile=dist/app.js']);
    // The documented step: cp -r node_modules/sockstate/prebuilds dist/
    fs.cpSync(path.join(app, 'node_modules', 'sockstate', 'prebuilds'), path.join(app, 'dist', 'prebuilds'), { recursive: true });
    const moved = path.join(elsewhere, 'self-contained');
    fs.cpSync(path.join(app, 'dist'), moved, { recursive: true });
    // Nothing of sockstate but the bundle and prebuilds/.
    expect(fs.readdirSync(moved).sort()).toEqual(['app.js', 'prebuilds']);
    expect(run(path.join(moved, 'app.js'))).toEqual({
      supported: true,
      unsupportedReason: null,
      binaries: [path.join(moved, 'prebuilds', tuple, 'sockstate.glibc.node')],
      status: 'open',
      source: 'kernel',
    });
  });

  it('with --external:sockstate: the addon loads from node_modules', () => {
    bundle(['app.js', '--outfile=dist/external.js', '--external:sockstate']);
    expect(fs.readFileSync(path.join(app, 'dist', 'external.js'), 'utf8')).toContain('require("sockstate")');
    expect(run(path.join(app, 'dist', 'external.js'))).toEqual({
      supported: true,
      unsupportedReason: null,
      binaries: [path.join(app, 'node_modules', 'sockstate', 'prebuilds', tuple, 'sockstate.glibc.node')],
      status: 'open',
      source: 'kernel',
    });
  });

  it('ESM output (--format=esm) with --external:sockstate: the addon loads', () => {
    bundle(['app.mjs', '--format=esm', '--outfile=dist/external.mjs', '--external:sockstate']);
    expect(run(path.join(app, 'dist', 'external.mjs'))).toEqual({ supported: true, unsupportedReason: null, status: 'open', source: 'kernel' });
  });
});
