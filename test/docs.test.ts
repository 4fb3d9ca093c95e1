import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Block, docFiles, isExcerpt, LANGUAGES, matches, normalise, readPage, VARY_RULES, varyList } from './helpers/docs';
import { type MariaDB, mariadbAvailable, startMariaDB } from './helpers/mariadb';
import { type Postgres, postgresAvailable, startPostgres } from './helpers/postgres';

// The docs cannot drift from the code: every block that shows output is
// run with this Node against the built lib/ and its output compared,
// every other code block is type-checked and parsed, and links, exports
// and error codes are held to the pages that must name them. The markers
// and the normalisation rules are described in CONTRIBUTING.md, "The docs
// are tested".

const root = path.join(__dirname, '..');
const pages = docFiles(root).map((file) => readPage(root, file));
const nodeMajor = Number(process.versions.node.split('.')[0]);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A program shown in the docs and one output it must print. */
interface RunCase {
  readonly name: string;
  readonly program: Block;
  /** The shown output, or undefined: exit 0 and print nothing. */
  readonly output: Block | undefined;
  readonly options: ReadonlyMap<string, string | true>;
}

/** One `$ ` command of a console block and the lines shown after it. */
interface ConsoleCase {
  readonly name: string;
  readonly block: Block;
  readonly commands: { command: string; shown: string }[];
}

const problems: string[] = pages.flatMap((p) => p.problems);
const runCases: RunCase[] = [];
const consoleCases: ConsoleCase[] = [];
/** Blocks that are neither run nor quoted from examples/: type-checked and parsed. */
const checked: Block[] = [];
/** Inline programs that are run: parsed as well. */
const parsedOnly: Block[] = [];
const shellBlocks: Block[] = [];
const excerpts: Block[] = [];

for (const page of pages) {
  let lastRun: { block: Block; outputs: Block[] } | undefined;
  const runs: { block: Block; outputs: Block[] }[] = [];
  page.blocks.forEach((block, i) => {
    const where = `${block.file}:${block.line}`;
    const kind = block.marker?.kind;
    if (!(LANGUAGES as readonly string[]).includes(block.lang)) {
      problems.push(`${where}: a block ${block.lang === '' ? 'without a language' : `in '${block.lang}'`}; use one of ${LANGUAGES.join(', ')}`);
      return;
    }
    for (const [key, value] of block.marker?.options ?? []) {
      if (key === 'vary') {
        for (const rule of varyList(value)) {
          if (!(VARY_RULES as readonly string[]).includes(rule) && !(rule.startsWith('/') && rule.endsWith('/'))) {
            problems.push(`${where}: unknown vary rule '${rule}'`);
          }
        }
      } else if (!['node', 'root', 'platform', 'postgres', 'mariadb', 'installed', 'server', 'port'].includes(key) && !key.startsWith('env:')) {
        problems.push(`${where}: unknown marker option '${key}'`);
      }
    }
    if (block.lang === 'text') {
      const previous = page.blocks[i - 1];
      if (kind === 'output' || (kind === undefined && block.followsPrevious && previous?.marker?.kind === 'run' && lastRun?.block === previous)) {
        if (lastRun === undefined) problems.push(`${where}: an output block with no run block before it`);
        else lastRun.outputs.push(block);
      } else {
        problems.push(`${where}: a text block no marker claims: mark the program it is the output of (see CONTRIBUTING.md)`);
      }
      return;
    }
    if (block.lang === 'console') {
      if (kind !== 'console') {
        problems.push(`${where}: a console block without <!-- test: console -->`);
        return;
      }
      const commands: { command: string; shown: string }[] = [];
      for (const line of block.code.replace(/\n$/, '').split('\n')) {
        if (line.startsWith('$ ')) commands.push({ command: line.slice(2), shown: '' });
        else if (commands.length === 0) problems.push(`${where}: output before the first '$ ' command`);
        else commands[commands.length - 1]!.shown += `${line}\n`;
      }
      consoleCases.push({ name: `${where} console: ${commands.map((c) => c.command.replace(/^.*\| /, '')).join('; ')}`, block, commands });
      return;
    }
    if (block.lang === 'sh') {
      if (kind !== undefined) problems.push(`${where}: sh blocks are parsed, not run: show output in a console block`);
      shellBlocks.push(block);
      return;
    }
    // js and ts
    if (kind === 'run') {
      // A program that is run is checked by running it; one quoted from
      // examples/ must also be that file.
      if (block.marker!.file !== undefined) excerpts.push(block);
      else parsedOnly.push(block);
      lastRun = { block, outputs: [] };
      runs.push(lastRun);
    } else if (kind === 'excerpt') {
      excerpts.push(block);
    } else if (kind === undefined) {
      checked.push(block);
    } else {
      problems.push(`${where}: a ${block.lang} block cannot be marked '${kind}'`);
    }
  });
  for (const { block, outputs } of runs) {
    const label = block.marker!.file ?? 'inline program';
    if (outputs.length === 0) {
      runCases.push({ name: `${block.file}:${block.line} ${label}: runs, prints nothing`, program: block, output: undefined, options: block.marker!.options });
    }
    for (const output of outputs) {
      const options = new Map([...block.marker!.options, ...(output.marker?.options ?? [])]);
      const extra = [...(output.marker?.options ?? [])].map(([k, v]) => (v === true ? k : `${k}=${v}`)).join(' ');
      runCases.push({ name: `${output.file}:${output.line} output of ${label}${extra === '' ? '' : ` (${extra})`}`, program: block, output, options });
    }
  }
}

/** Why a case cannot run here, or null. */
function skipReason(options: ReadonlyMap<string, string | true>): string | null {
  const node = options.get('node');
  if (typeof node === 'string' && !node.split(',').map(Number).includes(nodeMajor)) return `shown for Node ${node}, this is ${nodeMajor}`;
  if (options.has('root') && !isRoot) return 'needs root';
  const platform = options.get('platform');
  if (typeof platform === 'string' && platform !== `${process.platform}-${process.arch}`) return `shown for ${platform}`;
  if (options.has('postgres') && !pgWanted) return 'PostgreSQL is not installed';
  if (options.has('mariadb') && !mariaWanted) return 'MariaDB is not installed';
  return null;
}

const needs = (key: string): boolean => runCases.some((c) => c.options.has(key) && skipReasonBase(c.options) === null);
function skipReasonBase(options: ReadonlyMap<string, string | true>): string | null {
  const node = options.get('node');
  if (typeof node === 'string' && !node.split(',').map(Number).includes(nodeMajor)) return 'node';
  if (options.has('root') && !isRoot) return 'root';
  return null;
}
const pgWanted = needs('postgres') && postgresAvailable();
const mariaWanted = needs('mariadb') && mariadbAvailable();

// Temporary projects: `linked` has every dependency of this checkout and
// sockstate itself (this checkout) in node_modules; `installed` has the
// package as a tarball would install it, without a build/ of its own.
let tmp: string;
let linked: string;
let installed: string;
let postgres: Postgres | undefined;
let mariadb: MariaDB | undefined;

function project(dir: string, sockstate: 'link' | 'copy'): void {
  const modules = path.join(dir, 'node_modules');
  fs.mkdirSync(modules, { recursive: true });
  for (const entry of fs.readdirSync(path.join(root, 'node_modules'))) {
    if (entry.startsWith('.')) continue;
    fs.symlinkSync(path.join(root, 'node_modules', entry), path.join(modules, entry));
  }
  const pkg = path.join(modules, 'sockstate');
  if (sockstate === 'link') {
    fs.symlinkSync(root, pkg);
    return;
  }
  fs.mkdirSync(path.join(pkg, 'scripts'), { recursive: true });
  fs.copyFileSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
  fs.copyFileSync(path.join(root, 'scripts', 'build.js'), path.join(pkg, 'scripts', 'build.js'));
  fs.cpSync(path.join(root, 'lib'), path.join(pkg, 'lib'), { recursive: true });
  if (fs.existsSync(path.join(root, 'prebuilds'))) fs.symlinkSync(path.join(root, 'prebuilds'), path.join(pkg, 'prebuilds'));
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sockstate-docs-'));
  linked = path.join(tmp, 'linked');
  installed = path.join(tmp, 'installed');
  project(linked, 'link');
  project(installed, 'copy');
  const [pg, maria] = await Promise.all([pgWanted ? startPostgres() : undefined, mariaWanted ? startMariaDB() : undefined]);
  postgres = pg;
  mariadb = maria;
}, 90_000);

afterAll(async () => {
  await Promise.all([postgres?.stop(), mariadb?.stop()]);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** CommonJS from TypeScript, as `tsc --module commonjs` without esModuleInterop emits it. */
function transpile(code: string): string {
  return ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function exec(file: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Result> {
  const child = spawn(file, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const key of Object.keys(env)) if (key === 'NODE_OPTIONS' || key.startsWith('VITEST')) delete env[key];
  return env;
}

/** Runs the program of a case; returns its result. */
async function runProgram(c: RunCase): Promise<Result> {
  const env = baseEnv();
  for (const [key] of c.options) {
    if (key.startsWith('env:')) {
      const [name, ...value] = key.slice(4).split('=');
      env[name!] = value.join('=');
    }
  }
  if (postgres && c.options.has('postgres')) Object.assign(env, { PGHOST: postgres.host, PGPORT: String(postgres.port), PGUSER: postgres.user, PGDATABASE: postgres.database });
  if (mariadb && c.options.has('mariadb')) Object.assign(env, { MYSQL_HOST: mariadb.host, MYSQL_PORT: String(mariadb.port), MYSQL_USER: mariadb.user });
  const file = c.program.marker!.file;
  const where = c.options.has('installed') ? installed : linked;
  let source: string;
  let ext: string;
  if (file !== undefined) {
    source = fs.readFileSync(path.join(root, file), 'utf8');
    ext = path.extname(file);
    // As users run the examples: from the checkout, which resolves its own name.
    if ((ext === '.js' || ext === '.mjs') && !c.options.has('installed')) return exec(process.execPath, [file], root, env);
  } else {
    source = c.program.code;
    ext = c.program.lang === 'ts' ? '.ts' : /^\s*(import|export)\s/m.test(source) ? '.mjs' : '.js';
  }
  if (ext === '.ts') {
    source = transpile(source);
    ext = '.js';
  }
  const name = `${(file ?? `${c.program.file}-${c.program.line}`).replace(/[^\w.-]/g, '_').replace(/\.\w+$/, '')}${ext}`;
  fs.writeFileSync(path.join(where, name), source);
  return exec(process.execPath, [name], where, env);
}

describe('docs: every block that shows output is run and compared', () => {
  it('every code block is claimed, marked correctly and has a known language', () => {
    expect(problems).toEqual([]);
  });

  it('a block that quotes examples/ is that file, or an excerpt of it', () => {
    const wrong = excerpts
      .filter((b) => !isExcerpt(b.code, fs.readFileSync(path.join(root, b.marker!.file!), 'utf8')))
      .map((b) => `${b.file}:${b.line} does not quote ${b.marker!.file} as it is`);
    expect(wrong).toEqual([]);
  });

  for (const c of runCases) {
    const reason = skipReason(c.options);
    it.skipIf(reason !== null)(`${c.name}${reason === null ? '' : ` [${reason}]`}`, async () => {
      const result = await runProgram(c);
      const context = `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
      expect(result.code, context).toBe(0);
      if (c.output === undefined) {
        expect({ stdout: result.stdout, stderr: result.stderr }).toEqual({ stdout: '', stderr: '' });
        return;
      }
      const vary = varyList(c.options.get('vary'));
      const shown = normalise(c.output.code, vary);
      const actual = normalise(result.stdout, vary);
      if (!matches(shown, actual)) expect(actual.join('\n'), `normalised with vary=${vary.join(',') || '(none)'}; ${context}`).toBe(shown.join('\n'));
    }, 120_000);
  }

  for (const c of consoleCases) {
    const reason = skipReason(c.block.marker!.options);
    it.skipIf(reason !== null)(`${c.name}${reason === null ? '' : ` [${reason}]`}`, async () => {
      const options = c.block.marker!.options;
      const vary = varyList(options.get('vary'));
      const server = options.get('server');
      const fixture = typeof server === 'string' ? await startFixture(server) : undefined;
      try {
        for (const { command, shown } of c.commands) {
          let script = command.replace(/\bnpx sockstate\b/g, `'${process.execPath}' '${path.join(root, 'lib', 'cli', 'index.js')}'`);
          const port = options.get('port');
          if (fixture && typeof port === 'string') script = script.replace(new RegExp(`\\b${port}\\b`, 'g'), String(fixture.port));
          const result = await exec('bash', ['-c', `exec 2>&1\n${script}`], root, baseEnv());
          const expected = normalise(shown, vary);
          const actual = normalise(result.stdout, vary);
          if (!matches(expected, actual)) expect(actual.join('\n'), `$ ${command}\n(normalised with vary=${vary.join(',') || '(none)'})\n${result.stdout}`).toBe(expected.join('\n'));
        }
      } finally {
        fixture?.close();
      }
    }, 120_000);
  }
});

/** Loopback servers the console blocks talk to, by the name their marker gives. */
async function startFixture(name: string): Promise<{ port: number; close(): void }> {
  if (name !== 'read-then-close' && name !== 'greet-then-reset') throw new Error(`no fixture server named '${name}'`);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    if (name === 'read-then-close') {
      // Reads everything, closes 3.2 s after the connection.
      socket.resume();
      setTimeout(() => socket.end(), 3200);
    } else {
      // greet-then-reset: sends 6 bytes, resets the connection after 260 ms.
      socket.write('hello\n');
      setTimeout(() => socket.resetAndDestroy(), 260);
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

describe('docs: blocks without output are checked', () => {
  // Fragments may use names they do not declare (`socket`, `url`) and top-level await.
  const FRAGMENT_CODES = new Set([2304, 2552, 1375, 1378]);
  const snippetDir = path.join(root, 'docs', '.snippets');

  function isModule(code: string): boolean {
    return /^\s*(import|export)\s/m.test(code);
  }

  function typeErrors(list: readonly Block[], strict: boolean): string[] {
    const files = new Map<string, { block: Block; text: string; offset: number }>();
    for (const block of list) {
      const base = `${block.file.replace(/[^\w]/g, '_')}-${block.line}`;
      if (block.lang === 'ts') files.set(path.join(snippetDir, `${base}.ts`), { block, text: block.code, offset: 0 });
      else if (isModule(block.code)) files.set(path.join(snippetDir, `${base}.mjs`), { block, text: block.code, offset: 0 });
      else files.set(path.join(snippetDir, `${base}.cjs`), { block, text: `(async () => {\n${block.code}\n})();\n`, offset: 1 });
    }
    const options: ts.CompilerOptions = {
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2022.d.ts'],
      types: ['node'],
      typeRoots: [path.join(root, 'node_modules', '@types')],
      allowJs: true,
      checkJs: true,
      noEmit: true,
      strict,
      skipLibCheck: true,
      esModuleInterop: true,
      moduleDetection: ts.ModuleDetectionKind.Force,
    };
    const host = ts.createCompilerHost(options);
    const { fileExists, readFile, getSourceFile } = host;
    host.fileExists = (f) => files.has(f) || fileExists.call(host, f);
    host.readFile = (f) => files.get(f)?.text ?? readFile.call(host, f);
    host.getSourceFile = (f, version, onError, create) => {
      const snippet = files.get(f);
      return snippet ? ts.createSourceFile(f, snippet.text, version, true) : getSourceFile.call(host, f, version, onError, create);
    };
    const program = ts.createProgram([...files.keys()], options, host);
    const errors: string[] = [];
    for (const [f, { block, offset }] of files) {
      const source = program.getSourceFile(f)!;
      for (const d of [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]) {
        if (block.lang === 'js' && FRAGMENT_CODES.has(d.code)) continue;
        const line = d.start === undefined ? 0 : source.getLineAndCharacterOfPosition(d.start).line - offset;
        errors.push(`${block.file}:${block.line + 1 + line}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
      }
    }
    return errors;
  }

  it(`the js blocks type-check against lib/'s declarations`, () => {
    expect(typeErrors(checked.filter((b) => b.lang === 'js'), false)).toEqual([]);
  }, 120_000);

  it(`the ts blocks compile with --strict against lib/'s declarations`, () => {
    expect(typeErrors(checked.filter((b) => b.lang === 'ts'), true)).toEqual([]);
  }, 120_000);

  it('the js blocks parse with V8', () => {
    const errors: string[] = [];
    for (const block of [...checked, ...parsedOnly].filter((b) => b.lang === 'js')) {
      if (isModule(block.code)) {
        const file = path.join(tmp, `check-${block.line}.mjs`);
        fs.writeFileSync(file, block.code);
        const r = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8' });
        if (r.status !== 0) errors.push(`${block.file}:${block.line}: ${r.stderr}`);
        continue;
      }
      try {
        new vm.Script(`(async () => {\n${block.code}\n})`, { filename: `${block.file}:${block.line}` });
      } catch (err) {
        errors.push(`${block.file}:${block.line}: ${String(err)}`);
      }
    }
    expect(errors).toEqual([]);
  });

  it('the sh blocks parse with bash -n', () => {
    const errors = shellBlocks
      .map((b) => ({ b, r: spawnSync('bash', ['-n'], { input: b.code, encoding: 'utf8' }) }))
      .filter(({ r }) => r.status !== 0)
      .map(({ b, r }) => `${b.file}:${b.line}: ${r.stderr}`);
    expect(errors).toEqual([]);
  });
});

describe('docs: links, exports and error codes', () => {
  it('every relative link resolves, #anchors included', () => {
    const byFile = new Map(pages.map((p) => [p.file, p]));
    const broken: string[] = [];
    for (const page of pages) {
      for (const { target, line } of page.links) {
        if (/^[a-z]+:/i.test(target)) continue;
        const [file, anchor] = target.split('#') as [string, string | undefined];
        const resolved = file === '' ? page.file : path.posix.normalize(path.posix.join(path.posix.dirname(page.file), file));
        if (!fs.existsSync(path.join(root, resolved))) {
          broken.push(`${page.file}:${line}: ${target} (no ${resolved})`);
          continue;
        }
        if (anchor === undefined) continue;
        const to = byFile.get(resolved);
        if (to === undefined) broken.push(`${page.file}:${line}: ${target} (an anchor into a file the test does not read)`);
        else if (!to.anchors.has(anchor)) broken.push(`${page.file}:${line}: ${target} (no heading '#${anchor}' in ${resolved})`);
      }
    }
    expect(broken).toEqual([]);
  });

  // Each entry point of package.json's exports has its page under docs/api/
  // (the core's exports are on core.md and agents.md), which must name
  // every export of its declarations.
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, { types: string }> };
  const entries = Object.entries(pkg.exports).filter(([key]) => key !== './package.json');

  it.each(entries)('every export of %s is named on its page under docs/api/', (key, target) => {
    const pagesFor = key === '.' ? ['docs/api/core.md', 'docs/api/agents.md'] : [`docs/api/${key.slice(2)}.md`];
    const missingPages = pagesFor.filter((p) => !fs.existsSync(path.join(root, p)));
    expect(missingPages, `${key} needs a page`).toEqual([]);
    const text = pagesFor.map((p) => fs.readFileSync(path.join(root, p), 'utf8')).join('\n');
    const dts = path.join(root, target.types);
    const program = ts.createProgram([dts], { noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [path.join(root, 'node_modules', '@types')] });
    const checker = program.getTypeChecker();
    const symbol = checker.getSymbolAtLocation(program.getSourceFile(dts)!)!;
    const names = checker.getExportsOfModule(symbol).map((s) => s.getName()).filter((n) => n !== 'default');
    const unnamed = names.filter((n) => !new RegExp(`\`[^\`]*\\b${n}\\b[^\`]*\``).test(text));
    expect(unnamed, `exports of '${key === '.' ? 'sockstate' : `sockstate/${key.slice(2)}`}' not named (in backticks) on ${pagesFor.join(', ')}`).toEqual([]);
  });

  it('every ERR_SOCKSTATE_* code has its row in docs/errors.md', () => {
    const declared = new Set(fs.readFileSync(path.join(root, 'lib', 'errors.d.ts'), 'utf8').match(/ERR_SOCKSTATE_\w+/g));
    const table = fs.readFileSync(path.join(root, 'docs', 'errors.md'), 'utf8');
    expect(declared.size).toBeGreaterThan(0);
    expect([...declared].filter((code) => !table.includes(`| \`${code}\` |`))).toEqual([]);
  });
});
