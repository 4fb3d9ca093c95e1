'use strict';
// Shared helpers for the benchmarks: child processes that talk in lines,
// statistics, the machine description and table formatting.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const fixtures = path.join(__dirname, 'fixtures');

/**
 * A child process whose stdout is read line by line. `next()` resolves with
 * the next line (or rejects if the child exits first).
 */
class LineChild {
  constructor(command, args, options = {}) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'], ...options });
    this.lines = [];
    this.waiters = [];
    this.exited = false;
    let buffered = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const waiter = this.waiters.shift();
        if (waiter) waiter.resolve(line);
        else this.lines.push(line);
      }
    });
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      const err = new Error(`${path.basename(String(args[0] ?? command))} exited (${code ?? signal})`);
      for (const w of this.waiters.splice(0)) w.reject(err);
    });
  }

  next() {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift());
    if (this.exited) return Promise.reject(new Error('child already exited'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  send(line) {
    this.child.stdin.write(`${line}\n`);
  }

  /** Closes stdin (the fixtures exit on it) and waits for the exit. */
  async close() {
    if (this.exited) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** Starts a fixture script with node; resolves once it printed its first line. */
async function startFixture(script, args = []) {
  const child = new LineChild(process.execPath, [path.join(fixtures, script), ...args]);
  const first = await child.next();
  return { child, first };
}

function sorted(values) {
  return [...values].sort((a, b) => a - b);
}

function quantile(values, q) {
  const s = sorted(values);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/** Median, min, max and quartiles of a sample. */
function summary(values) {
  return {
    median: quantile(values, 0.5),
    min: Math.min(...values),
    max: Math.max(...values),
    p25: quantile(values, 0.25),
    p75: quantile(values, 0.75),
    n: values.length,
  };
}

function round(x, digits = 2) {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Cores, CPU model, kernel, Node: what the figures were measured on. */
function machine() {
  let cpuModel = 'unknown';
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^model name\s*:\s*(.+)$/m.exec(info);
    if (m) cpuModel = m[1].trim();
  } catch {
    cpuModel = os.cpus()[0]?.model ?? 'unknown';
  }
  let cpuId = null;
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const field = (name) => new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(info)?.[1]?.trim();
    cpuId = { vendor: field('vendor_id'), family: field('cpu family'), model: field('model'), stepping: field('stepping') };
  } catch {
    cpuId = null;
  }
  let virtualization = null;
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    if (/^flags\s*:.*\bhypervisor\b/m.test(info)) virtualization = 'virtual machine (hypervisor flag set)';
  } catch {
    virtualization = null;
  }
  return {
    cores: os.cpus().length,
    cpuModel,
    cpuId,
    virtualization,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    kernel: `${os.type()} ${os.release()}`,
    arch: process.arch,
    node: process.version,
    v8: process.versions.v8,
    loadAverageAtStart: os.loadavg().map((x) => round(x, 2)),
  };
}

/** A plain-text table: header row, rows of cells, right-aligned numbers. */
function table(header, rows) {
  const all = [header, ...rows].map((r) => r.map((c) => (c === undefined || c === null ? '' : String(c))));
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.every((r) => r[i] === '' || r[i] === null || r[i] === undefined || /^[-+]?[\d.,]+[x%]?( .*)?$/.test(String(r[i]))));
  const line = (r) => r.map((c, i) => (numeric[i] && i > 0 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  return [line(all[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

/** A Markdown table with the same cells. */
function markdownTable(header, rows) {
  const esc = (c) => String(c ?? '').replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Blocks the event loop for `ms`, as synchronous work would. */
function busyWait(ms) {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

module.exports = { LineChild, startFixture, summary, quantile, round, machine, table, markdownTable, sleep, busyWait, fixtures };
