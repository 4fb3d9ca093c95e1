import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MariaDB, mariadbAvailable, startMariaDB } from './helpers/mariadb';

// The README's mysql2 guide quotes this example's output: run it as a user
// would, against a MariaDB started here, and hold it to that output.
const root = path.join(__dirname, '..');

describe.skipIf(!mariadbAvailable())('examples/mysql2.js', () => {
  let db: MariaDB;
  beforeAll(async () => {
    db = await startMariaDB();
  }, 60_000);
  afterAll(async () => {
    await db?.stop();
  });

  it('the stock pool meets the reset, the guarded pool replaces the connection', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [path.join('examples', 'mysql2.js')], {
      cwd: root,
      timeout: 30_000,
      env: { ...process.env, MYSQL_HOST: db.host, MYSQL_PORT: String(db.port), MYSQL_USER: db.user },
    });
    expect(stdout.trimEnd().split('\n')).toEqual(OUTPUT);
  });
});

const OUTPUT = [
  'stock pool:   ECONNRESET (write ECONNRESET)',
  'guarded pool: 4',
  '{',
  '  checked: 1,',
  '  rejected: 1,',
  '  rejectedByReason: { closed: 1, dataPending: 0, stalled: 0, silent: 0 },',
  '  unchecked: 0,',
  '  lastProbeError: null',
  '}',
];

describe('the guide Guarding a mysql2 pool', () => {
  it('quotes examples/mysql2.js and the output it prints', () => {
    // A section of the README, or a page of docs/guides/.
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const start = readme.indexOf('### Guarding a mysql2 pool\n');
    const page = path.join(root, 'docs', 'guides', 'mysql2.md');
    const guide = start >= 0 ? readme.slice(start, readme.indexOf('\n### ', start + 1)) : fs.existsSync(page) ? fs.readFileSync(page, 'utf8') : '';
    expect(guide).toContain('Guarding a mysql2 pool');
    const blocks = [...guide.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => [m[1], m[2]]);
    expect(blocks[0]).toEqual(['js', fs.readFileSync(path.join(root, 'examples', 'mysql2.js'), 'utf8')]);
    expect(blocks[1]).toEqual(['text', `${OUTPUT.join('\n')}\n`]);
  });
});
