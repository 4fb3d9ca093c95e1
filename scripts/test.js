'use strict';
// `npm test`'s runner: the test files that block the event loop or race a
// server's timers ('kernel' in vitest.config.mts) run one at a time, and
// beside them, in a second vitest process, the files that only do I/O of
// their own ('kernel-io', 'fallback'). The first streams its output; the
// second's is printed as one block when it ends, so that the two do not
// interleave line by line. Ends with the two runs' counts added up on one
// line, and fails when either run fails.
//   node scripts/test.js            both groups
//   node scripts/test.js ARGS...    one plain `vitest run ARGS...`
const { spawn } = require('node:child_process');
const path = require('node:path');

const vitest = path.join(__dirname, '..', 'node_modules', 'vitest', 'vitest.mjs');
const args = process.argv.slice(2);

function run(vitestArgs, live) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [vitest, 'run', ...vitestArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FORCE_COLOR: process.env.FORCE_COLOR ?? (process.stdout.isTTY ? '1' : '0') },
    });
    const chunks = [];
    const take = (stream, into) => (chunk) => {
      chunks.push(chunk);
      if (live) into.write(chunk);
    };
    child.stdout.on('data', take(child.stdout, process.stdout));
    child.stderr.on('data', take(child.stderr, process.stderr));
    child.on('close', (code, signal) => {
      const output = Buffer.concat(chunks).toString();
      if (!live) process.stdout.write(output);
      resolve({ code: code ?? (signal ? 1 : 0), output });
    });
  });
}

// The last `N passed, N failed, N skipped` line of a run (test/helpers/summary-reporter.ts).
function counts(output) {
  const lines = [...output.matchAll(/^(\d+) passed, (\d+) failed, (\d+) skipped$/gm)];
  const last = lines[lines.length - 1];
  return last === undefined ? null : last.slice(1, 4).map(Number);
}

async function main() {
  if (args.length > 0) {
    const { code } = await run(args, true);
    process.exit(code);
  }
  const [timed, io] = await Promise.all([run(['--project', 'kernel'], true), run(['--project', 'kernel-io', '--project', 'fallback'], false)]);
  const totals = [counts(timed.output), counts(io.output)];
  let code = timed.code !== 0 || io.code !== 0 ? 1 : 0;
  if (totals.includes(null)) {
    // A run that printed no counts did not finish its tests.
    process.stderr.write('test: a vitest run ended without its summary line\n');
    code = 1;
  } else {
    const [passed, failed, skipped] = [0, 1, 2].map((i) => totals[0][i] + totals[1][i]);
    process.stdout.write(`\nall: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
  process.exit(code);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
