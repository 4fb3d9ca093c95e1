import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../src/native';
import { type Postgres, postgresAvailable, startPostgres } from './helpers/postgres';

// The README's pg and knex examples, run as users run them against a real
// PostgreSQL: the README quotes their output, so it must stay true.
const run = promisify(execFile);
const root = path.join(__dirname, '..');

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
    expect(await example('pg-guard.js')).toEqual([
      'stock: failed: terminating connection due to idle-session timeout (57P05)',
      'guarded: still here',
      'guard: checked 1, rejected 1 { closed: 0, dataPending: 1, stalled: 0, silent: 0 }',
    ]);
  });

  it('knex-validate.js: knex with the validator replaces the dead connection', async () => {
    expect(await example('knex-validate.js')).toEqual([
      'stock: failed: SELECT \'still here\' AS answer - terminating connection due to idle-session timeout',
      'validated: still here',
      'validator: {',
      '  checked: 3,',
      '  rejected: 1,',
      '  rejectedByReason: { closed: 0, dataPending: 1, stalled: 0, silent: 0 }',
      '}',
    ]);
  });
});
