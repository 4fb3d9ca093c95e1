import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The package as users load it: the compiled lib/ through package.json
// "exports", from CommonJS and from ESM, and its emitted .d.ts as a
// TypeScript consumer compiles it.
const root = path.join(__dirname, '..');
const node = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
  execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8', env }).trim();
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, unknown>;
  scripts?: Record<string, string>;
  engines?: Record<string, string>;
  license?: string;
  repository?: { type?: string; url?: string };
  gypfile?: boolean;
  files?: string[];
  dependencies?: Record<string, string>;
};

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

  it('the default export is the whole API, from CommonJS and ESM alike', () => {
    // TypeScript compiled to CommonJS reads `.default` of the required module.
    expect(node(['-e', "const s = require('sockstate'); console.log(s.default.connectionState === s.connectionState, s.default.supported)"])).toBe('true true');
    expect(
      node(['--input-type=module', '-e', "import s, { connectionState } from 'sockstate'; console.log(s.connectionState === connectionState)"]),
    ).toBe('true');
  });

  it('loads without the addon and says so', () => {
    const out = node(['-e', "const s = require('sockstate'); console.log(s.supported, s.unsupportedReason)"], {
      ...process.env,
      SOCKSTATE_FORCE_FALLBACK: '1',
    });
    expect(out).toBe('false disabled by SOCKSTATE_FORCE_FALLBACK=1');
  });

  it('package.json: nothing runs at install time, and what it claims is there', () => {
    // No install-time scripts (npm's allowScripts has nothing to warn about),
    // and no implicit `node-gyp rebuild` for binding.gyp: "gypfile": false is
    // lost once npm reads the package from a lockfile, so the package ships
    // no binding.gyp at its root, only its copy in prebuilds/ (see
    // test/consumer.test.ts).
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) expect(pkg.scripts?.[hook]).toBeUndefined();
    expect(pkg.files).not.toContain('binding.gyp');
    expect(pkg.files?.filter((f) => /\.gyp$|^\*|^\.\/?$/.test(f))).toEqual([]);
    // npm runs `dependencies` for the project under development only: the
    // clone's `npm install` builds, a consumer's install runs nothing.
    expect(pkg.scripts?.dependencies).toBe('node scripts/build.js --if-missing && tsc -p tsconfig.build.json');
    expect(pkg.gypfile).toBe(false);
    expect(pkg.engines).toEqual({ node: '>=20' });
    expect(pkg.license).toBe('MIT');
    expect(fs.readFileSync(path.join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n/);
    expect(pkg.repository?.type).toBe('git');
    expect(Object.keys(pkg.dependencies ?? {}).sort()).toEqual(['node-addon-api', 'node-gyp-build']);
  });
});

// Every target TypeScript accepts (ES3 was removed in 5.5).
const TARGETS = ['es5', 'es2015', 'es2016', 'es2017', 'es2018', 'es2019', 'es2020', 'es2021', 'es2022', 'es2023', 'es2024', 'esnext'];

describe('the shipped .d.ts, compiled by a consumer without skipLibCheck', () => {
  let dir: string;
  let files: string[];
  let ours: (fileName: string) => boolean;
  const parsed = new Map<string, ts.SourceFile | undefined>();

  beforeAll(() => {
    // A consumer project: sockstate in node_modules, as installed.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-types-'));
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(root, path.join(dir, 'node_modules', 'sockstate'), 'dir');
    fs.symlinkSync(path.join(root, 'node_modules', '@types'), path.join(dir, 'node_modules', '@types'), 'dir');
    fs.copyFileSync(path.join(root, 'test', 'types', 'consumer.ts'), path.join(dir, 'consumer.ts'));
    // Every subpath module that has been built, imported as users do.
    const subpaths = Object.keys(pkg.exports)
      .filter((k) => k !== '.' && k !== './package.json')
      .map((k) => k.slice(2))
      .filter((name) => fs.existsSync(path.join(root, (pkg.exports as Record<string, { types: string }>)[`./${name}`]!.types)));
    expect(subpaths.length).toBeGreaterThan(0);
    fs.writeFileSync(
      path.join(dir, 'subpaths.ts'),
      subpaths.map((name, i) => `import * as m${i} from 'sockstate/${name}';\nconsole.log(m${i});\n`).join(''),
    );
    files = [path.join(dir, 'consumer.ts'), path.join(dir, 'subpaths.ts')];
    const lib = `${fs.realpathSync(path.join(root, 'lib'))}${path.sep}`;
    ours = (f) => f.startsWith(lib) || f.startsWith(fs.realpathSync(dir));
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  // Diagnostics of the consumer's files and of sockstate's .d.ts only; the
  // rest of @types/node and the peers' own types are theirs.
  function diagnose(options: ts.CompilerOptions, entries: string[] = files): string[] {
    const full: ts.CompilerOptions = { noEmit: true, strict: true, types: ['node'], skipLibCheck: false, ...options };
    const host = ts.createCompilerHost(full);
    const read = host.getSourceFile.bind(host);
    host.getSourceFile = (fileName, version, ...rest) => {
      // Others' declarations (TypeScript's lib, @types/node, peers) are parsed
      // once for all targets: only ours are checked, each for its target.
      const format = typeof version === 'object' ? version.impliedNodeFormat : undefined;
      const key = ours(fileName) ? `${fileName}\0${JSON.stringify(version)}` : `${fileName}\0${format}`;
      if (!parsed.has(key)) parsed.set(key, read(fileName, version, ...rest));
      return parsed.get(key);
    };
    const program = ts.createProgram(entries, full, host);
    const checked = program.getSourceFiles().filter((sf) => ours(sf.fileName));
    const diagnostics = [
      ...program.getOptionsDiagnostics(),
      ...program.getGlobalDiagnostics(),
      ...checked.flatMap((sf) => [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]),
    ];
    return diagnostics.map((d) => {
      const where = d.file ? `${path.basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ` : '';
      return `${where}${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
    });
  }

  const commonjs = (target: ts.ScriptTarget): ts.CompilerOptions => ({
    target,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
  });

  it('the check sees what a consumer would: a #private field in a .d.ts fails at ES5 (control)', () => {
    fs.writeFileSync(path.join(dir, 'control-lib.d.ts'), 'export declare class C {\n  #private;\n}\n');
    fs.writeFileSync(path.join(dir, 'control.ts'), "import { C } from './control-lib';\nexport const c: C | null = null;\n");
    const control = [path.join(dir, 'control.ts')];
    expect(diagnose(commonjs(ts.ScriptTarget.ES5), control)).toEqual([
      'control-lib.d.ts:2: Private identifiers are only available when targeting ECMAScript 2015 and higher.',
    ]);
    expect(diagnose(commonjs(ts.ScriptTarget.ES2015), control)).toEqual([]);
  }, 120_000);

  it.each(TARGETS)('target %s, CommonJS (moduleResolution node10, through typesVersions)', (target) => {
    const scriptTarget = target === 'esnext' ? ts.ScriptTarget.ESNext : ts.ScriptTarget[target.toUpperCase() as 'ES5'];
    expect(scriptTarget).toBeTypeOf('number');
    expect(diagnose(commonjs(scriptTarget))).toEqual([]);
  }, 120_000);

  it('module node16 (through "exports")', () => {
    expect(diagnose({ target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 })).toEqual([]);
  }, 120_000);

  it('module esnext, moduleResolution bundler', () => {
    expect(diagnose({ target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler })).toEqual([]);
  }, 120_000);

  it('ES3 is refused by TypeScript itself, so it is not a target to support', () => {
    expect(diagnose({ target: ts.ScriptTarget.ES3, module: ts.ModuleKind.CommonJS })).toContainEqual(
      expect.stringContaining("Option 'target=ES3' has been removed"),
    );
  }, 120_000);
});
