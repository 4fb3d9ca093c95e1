'use strict';
// Memory: each function called N times in a fresh process (bench/child.js),
// heap and RSS compared after a warm-up and after the calls, both after a
// full GC. A leak of even 1 byte per call would show as N bytes.
const { execFile } = require('node:child_process');
const path = require('node:path');

function runChild(fn, calls, sockets) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--expose-gc', path.join(__dirname, 'child.js'), 'memory', fn, String(calls), String(sockets)],
      { timeout: 180000, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          resolve({ fn, error: (stderr || err.message).trim().split('\n').slice(-3).join(' ') });
          return;
        }
        resolve(JSON.parse(stdout.trim().split('\n').pop()));
      },
    );
  });
}

async function measureMemory(jobs, log) {
  const results = [];
  for (const { fn, calls, sockets = 1 } of jobs) {
    const r = await runChild(fn, calls, sockets);
    if (r.error) {
      log(`  memory ${fn}: ${r.error}`);
    } else {
      const mb = (x) => (x / 2 ** 20).toFixed(1);
      log(`  memory ${fn}: heap ${mb(r.before.heapUsed)} -> ${mb(r.after.heapUsed)} MiB, rss ${mb(r.before.rss)} -> ${mb(r.after.rss)} MiB (${r.seconds.toFixed(1)} s)`);
    }
    results.push(r);
  }
  return results;
}

module.exports = { measureMemory };
