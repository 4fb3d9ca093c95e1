/**
 * The one module that loads the compiled addon. Everything else imports
 * {@link native} from here, so the loader can change in one place.
 *
 * The binary is found by node-gyp-build: a build from source
 * (build/Release, made by `scripts/build.js` or node-gyp) first, else the
 * prebuilt binary shipped for this platform in prebuilds/, so installing
 * compiles nothing where a prebuild fits.
 *
 * Bundled (esbuild, for one), this code no longer sits in the package's
 * lib/: it then looks in the bundle's own folder, so a copy of the
 * package's prebuilds/ beside the bundle is found wherever it runs from.
 *
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { codedError, type SockstateError } from '../errors';
import type { NativeBinding } from './binding';
import { createTcpInfoDecoder } from './tcp-info';

export type { LayoutField, NativeBinding } from './binding';

const FUNCTIONS = [
  'probe',
  'poll',
  'probeMany',
  'tcpInfo',
  'soError',
  'setKeepAlive',
  'getKeepAlive',
  'setUserTimeout',
  'getUserTimeout',
  'sweepSample',
  'sweepProbe',
  'sample',
  'cookies',
] as const satisfies readonly (keyof NativeBinding)[];
const CONSTANTS = [
  'probeSlots',
  'probeKinds',
  'probeSyscalls',
  'pollFlags',
  'tcpStates',
  'tcpInfoLayout',
  'sampleSlots',
] as const satisfies readonly (keyof NativeBinding)[];

/** Whether `dir` is sockstate's own package folder (this file's parent, unless bundled). */
function isPackageRoot(dir: string): boolean {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name === 'sockstate';
  } catch {
    return false;
  }
}

/**
 * True when this code runs from a bundle rather than from the package's
 * lib/ (or src/): no sockstate package.json above it.
 */
const bundled = !isPackageRoot(path.join(__dirname, '..', '..'));

/**
 * Where the binary is looked for: the package root (holding package.json,
 * prebuilds/ and a build from source in build/), or, bundled, the bundle's
 * folder.
 */
const packageRoot = bundled ? __dirname : path.join(__dirname, '..', '..');

/** What to do, bundled, when the binary beside the bundle is missing or unusable. */
function bundledRemedy(tuple: string): string {
  return (
    `Copy node_modules/sockstate/prebuilds to ${path.join(packageRoot, 'prebuilds')} ` +
    `(it needs ${path.join('prebuilds', tuple)}), or keep sockstate out of the bundle (esbuild: --external:sockstate).`
  );
}

/** Why the addon did not load: a one- or two-sentence reason, the folders searched and the original error. */
export interface LoadError extends Error {
  /** Folders searched for a binary, in order. */
  readonly paths: readonly string[];
}

function loadFailure(reason: string, paths: readonly string[], cause?: unknown): LoadError {
  const err = new Error(reason, cause === undefined ? undefined : { cause }) as Error & { paths: readonly string[] };
  err.paths = paths;
  return err;
}

/** node-gyp-build's libc guess, which decides the prebuild it picks. */
function libc(): string {
  return process.env.LIBC || (fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc');
}

/** The one command that builds the addon from source for this install. */
function buildCommand(): string {
  const script = path.join(packageRoot, 'scripts', 'build.js');
  const relative = path.relative(process.cwd(), script);
  return `node ${relative.startsWith('..') || path.isAbsolute(relative) ? script : relative}`;
}

const BUILD_NEEDS = 'Python 3, make and a C++ compiler';

/** A dlopen message without the file name it starts with. */
function dlopenReason(err: unknown, file: string): string {
  const message = err instanceof Error ? err.message : String(err);
  const first = message.split('\n')[0]!;
  return first.startsWith(`${file}: `) ? first.slice(file.length + 2) : first;
}

function load(): { binding: NativeBinding | null; error: LoadError | null } {
  if (process.env.SOCKSTATE_FORCE_FALLBACK === '1') {
    return { binding: null, error: loadFailure('disabled by SOCKSTATE_FORCE_FALLBACK=1', []) };
  }
  if (process.platform !== 'linux') {
    return {
      binding: null,
      error: loadFailure(`the native probe is Linux-only (this is ${process.platform}); the API answers from socket flags`, []),
    };
  }
  const tuple = `linux-${process.arch}`;
  const searched = [
    path.join(packageRoot, 'build', 'Release'),
    path.join(packageRoot, 'build', 'Debug'),
    path.join(packageRoot, 'prebuilds', tuple),
  ];
  let file: string;
  try {
    // The loader is a dependency; required here only, as the binding is.
    const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    file = nodeGypBuild.resolve(packageRoot);
  } catch (err) {
    if (bundled) {
      return {
        binding: null,
        error: loadFailure(
          `sockstate is bundled (into ${__filename}) and finds no native probe for ${tuple} with ${libc()} libc beside the bundle. ` +
            bundledRemedy(tuple),
          searched,
          err,
        ),
      };
    }
    return {
      binding: null,
      error: loadFailure(
        `sockstate has no prebuilt native probe for ${tuple} with ${libc()} libc, and none was built from source. ` +
          `Build it (needs ${BUILD_NEEDS}) with: ${buildCommand()}`,
        searched,
        err,
      ),
    };
  }
  const shown = path.relative(packageRoot, file);
  let binding: NativeBinding;
  try {
    binding = require(file) as NativeBinding;
  } catch (err) {
    return {
      binding: null,
      error: loadFailure(
        `sockstate's native probe ${shown} failed to load (${dlopenReason(err, file)}). ` +
          (bundled ? bundledRemedy(tuple) : `Build it from source (needs ${BUILD_NEEDS}) with: ${buildCommand()}`),
        searched,
        err,
      ),
    };
  }
  try {
    if (!binding.platformSupported) throw new Error('it was built without the Linux probes');
    // A stale build whose exports do not match this code must not be used.
    for (const name of FUNCTIONS) {
      if (typeof binding[name] !== 'function') throw new Error(`it has no ${name}()`);
    }
    for (const name of CONSTANTS) {
      if (typeof binding[name] !== 'object' || binding[name] === null) throw new Error(`it has no ${name}`);
    }
    createTcpInfoDecoder(binding.tcpInfoLayout, binding.tcpStates);
  } catch (err) {
    return {
      binding: null,
      error: loadFailure(
        `sockstate's native probe ${shown} does not match this version of sockstate (${(err as Error).message}). ` +
          (bundled ? bundledRemedy(tuple) : `Rebuild it with: ${buildCommand()}`),
        searched,
        err,
      ),
    };
  }
  return { binding, error: null };
}

const loaded = load();

/** The addon, or `null` when it is unavailable (see {@link loadError}). */
export const native: NativeBinding | null = loaded.binding;

/**
 * Why the addon is unavailable, or `null` when it loaded: the message says
 * what is missing and the command that fixes it; `paths` lists the folders
 * searched and `cause` holds the loader's own error.
 */
export const loadError: LoadError | null = loaded.error;

/** `ERR_SOCKSTATE_UNSUPPORTED`: `what` needs the addon; says why it is not loaded. */
export function unsupported(what: string): SockstateError {
  const err = codedError(
    'ERR_SOCKSTATE_UNSUPPORTED',
    `${what} needs the native probe, which is not available: ${loadError?.message ?? 'unknown reason'}`,
  );
  // The full story (folders searched, the loader's error) for whoever needs it.
  if (loadError) Object.defineProperty(err, 'cause', { value: loadError, configurable: true, writable: true });
  return err;
}
