import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../src/probe/native';
import { type Postgres, postgresAvailable, startPostgres } from './helpers/postgres';

// The README's pg, knex and generic-pool examples, run as users run them
// against a real PostgreSQL: the README quotes their output, so it must
// stay true.
const run = promisify(execFile);
const root = path.join(__dirname, '..');

const PG_OUTPUT = [
  'stock: failed: terminating connection due to idle-session timeout (57P05)',
  'guarded: still here',
  'guard: checked 1, rejected 1 { closed: 0, dataPending: 1, stalled: 0, silent: 0 }',
];
const KNEX_OUTPUT = [
  "stock: failed: SELECT 'still here' AS answer - terminating connection due to idle-session timeout",
  'validated: still here',
  'validator: {',
  '  checked: 3,',
  '  rejected: 1,',
  '  rejectedByReason: { closed: 0, dataPending: 1, stalled: 0, silent: 0 },',
  '  unchecked: 0,',
  '  lastProbeError: null',
  '}',
];
const GENERIC_POOL_OUTPUT = [
  'stock: failed: terminating connection due to idle-session timeout',
  'validated: still here',
  'validator: {',
  '  checked: 3,',
  '  rejected: 1,',
  '  rejectedByReason: { closed: 0, dataPending: 1, stalled: 0, silent: 0 },',
  '  unchecked: 0,',
  '  lastProbeError: null',
  '}',
];

/**
 * The fenced blocks of one guide, as [language, text]: a `### title`
 * section of the README, or a page of docs/guides/ titled `# title`.
 */
function guideBlocks(title: string): string[][] {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const start = readme.indexOf(`### ${title}\n`);
  let guide: string | undefined = start >= 0 ? readme.slice(start, readme.indexOf('\n### ', start + 1)) : undefined;
  const guides = path.join(root, 'docs', 'guides');
  if (guide === undefined && fs.existsSync(guides)) {
    guide = fs
      .readdirSync(guides)
      .map((f) => fs.readFileSync(path.join(guides, f), 'utf8'))
      .find((text) => text.startsWith(`# ${title}\n`));
  }
  expect(guide, `a guide titled ${title}`).toBeDefined();
  return [...guide!.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => [m[1]!, m[2]!]);
}

describe('the pg and knex guides quote the examples and their output', () => {
  it('Guarding a pg pool', () => {
    const blocks = guideBlocks('Guarding a pg pool');
    expect(blocks[0]).toEqual(['js', fs.readFileSync(path.join(root, 'examples', 'pg-guard.js'), 'utf8')]);
    expect(blocks[1]).toEqual(['text', `${PG_OUTPUT.join('\n')}\n`]);
  });

  it('Validating with knex and generic-pool', () => {
    const blocks = guideBlocks('Validating with knex and generic-pool');
    expect(blocks[0]).toEqual(['js', fs.readFileSync(path.join(root, 'examples', 'knex-validate.js'), 'utf8')]);
    expect(blocks[1]).toEqual(['text', `${KNEX_OUTPUT.join('\n')}\n`]);
  });
});

describe.runIf(native !== null && postgresAvailable())('examples/ for pg and knex', () => {
  let server: Postgres;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function example(name: string): Promise<string[]> {
    const env = { ...process.env, PGHOST: server.host, PGPORT: String(server.port), PGUSER: server.user, PGDATABASE: server.database };
    const { stdout } = await run(process.execPath, [path.join('examples', name)], { cwd: root, env, timeout: 30_000 });
    return stdout.trimEnd().split('\n');
  }

  it('pg-guard.js: the stock pool fails on the ended session, the guarded one does not', async () => {
    expect(await example('pg-guard.js')).toEqual(PG_OUTPUT);
  });

  it('knex-validate.js: knex with the validator replaces the dead connection', async () => {
    expect(await example('knex-validate.js')).toEqual(KNEX_OUTPUT);
  });

  it('generic-pool.js: generic-pool with the validator replaces the dead client', async () => {
    expect(await example('generic-pool.js')).toEqual(GENERIC_POOL_OUTPUT);
  });
});
