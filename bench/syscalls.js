'use strict';
// How many syscalls each call really makes, counted by `strace -c` on a
// child process (bench/child.js) that makes N calls, minus a run with 0
// calls (connect and libuv make a few of their own). This is what "the
// floor of the syscalls it made" refers to.
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const TRACED = ['getsockopt', 'poll', 'ppoll', 'ioctl'];

function hasStrace() {
  const r = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  return r.status === 0;
}

function count(fn, calls, sockets) {
  const out = path.join(os.tmpdir(), `sockstate-bench-strace-${process.pid}-${fn}-${calls}.txt`);
  execFileSync(
    'strace',
    ['-f', '-c', '-U', 'calls,errors,name', '-e', `trace=${TRACED.join(',')}`, '-o', out, process.execPath, path.join(__dirname, 'child.js'), 'syscalls', fn, String(calls), String(sockets)],
    { stdio: ['ignore', 'ignore', 'inherit'], timeout: 60000 },
  );
  const text = fs.readFileSync(out, 'utf8');
  fs.unlinkSync(out);
  const counts = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)?\s+(\w+)\s*$/.exec(line);
    if (m && m[3] !== 'total') counts[m[3]] = Number(m[1]);
  }
  return counts;
}

/**
 * Syscalls per call (per socket for probeMany) of each function, or an
 * `error` string when it could not be counted.
 */
function countSyscalls(functions, { calls = 2000, log }) {
  if (!hasStrace()) return { error: 'strace is not installed: syscalls per call not counted' };
  const results = {};
  for (const { fn, sockets = 1 } of functions) {
    try {
      const base = count(fn, 0, sockets);
      const loaded = count(fn, calls, sockets);
      const per = {};
      for (const name of TRACED) {
        const d = (loaded[name] ?? 0) - (base[name] ?? 0);
        if (d !== 0) per[name] = Math.round((d / calls) * 100) / 100;
      }
      results[fn] = per;
      log(`  syscalls: ${fn}: ${JSON.stringify(per)}`);
    } catch (err) {
      results[fn] = { error: err.message.split('\n')[0] };
      log(`  syscalls: ${fn}: ${results[fn].error}`);
    }
  }
  return results;
}

module.exports = { countSyscalls };
