import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

// The agent examples the docs quote, run as users run them, on the Node
// line under test: docs/guides/http-agents.md shows the output of Node 20
// and of 22.2x+.
const run = promisify(execFile);
const root = path.join(__dirname, '..');
const stockChecks = Number(process.versions.node.split('.')[0]) >= 22;

it(`http-agent-queue.js: the queued hand-off, stock agent ${stockChecks ? 'checked by Node too' : 'fails'}`, async () => {
  const { stdout } = await run(process.execPath, [path.join('examples', 'http-agent-queue.js')], { cwd: root, timeout: 15_000 });
  expect(stdout.trimEnd().split('\n')).toEqual([
    `Node ${process.version}`,
    // Node 20 hands the queued request the dead socket; 22.2x+ checks it.
    `http.Agent:      200, ${stockChecks ? '200' : 'ECONNRESET'}`,
    'sockstate Agent: 200, 200 (stale sockets destroyed: 1)',
  ]);
});

it('the guide quotes http-agent-queue.js as it is, with the output of both kinds of line', () => {
  const readme = fs.readFileSync(path.join(root, 'docs', 'guides', 'http-agents.md'), 'utf8');
  const source = fs.readFileSync(path.join(root, 'examples', 'http-agent-queue.js'), 'utf8');
  expect(readme).toContain(`\`\`\`js\n${source}\`\`\``);
  expect(readme).toContain('http.Agent:      200, ECONNRESET\nsockstate Agent: 200, 200 (stale sockets destroyed: 1)');
  expect(readme).toContain('http.Agent:      200, 200\nsockstate Agent: 200, 200 (stale sockets destroyed: 1)');
});
