'use strict';
// Turns bench/results.json into tables: plain text for the terminal, or
// Markdown for the README (`node bench/report.js [results.json]`).
const fs = require('node:fs');
const path = require('node:path');
const { summary, table, markdownTable } = require('./util');

const TARGETS = {
  connectionState: { max: 1.3, of: 'TCP_INFO + poll' },
  isReusable: { max: 1.3, of: 'one poll' },
  tcpInfo: { max: 2, of: 'one TCP_INFO (280 B)' },
  probeMany1000: { max: 1.1, of: 'TCP_INFO + poll per socket, 1,000 fds' },
  probeMany10000: { max: 1.1, of: 'TCP_INFO + poll per socket, 10,000 fds' },
};

const FLOOR_LABELS = {
  tcpInfoFull: 'TCP_INFO (280 B)',
  tcpInfoProbe: 'TCP_INFO (160 B)',
  tcpInfoPoll: 'TCP_INFO (160 B) + poll',
  poll: 'poll',
  soError: 'SO_ERROR',
  siocinq: 'SIOCINQ',
  'many1000.perSocket': 'TCP_INFO + poll, 1,000 fds, per fd',
  // (threaded variants are looked up as `${key}Mt`)
  'many10000.perSocket': 'TCP_INFO + poll, 10,000 fds, per fd',
};

// sockstate call, peer call: same work.
const VERSUS = [
  ['connectionState', 'koffiState'],
  ['tcpInfo', 'koffiTcpInfo'],
  ['isReusable', 'koffiPoll'],
  ['takeSocketError', 'sockoptSoError'],
  ['takeSocketError', 'koffiSoError'],
];

const ns = (x) => (Number.isFinite(x) ? (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1)) : '');
const times = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}x` : '');
const range = (s, fmt) => (s ? `${fmt(s.min)}–${fmt(s.max)}` : '');

function byId(results) {
  return Object.fromEntries((results.cost?.results ?? []).map((r) => [r.id, r]));
}

function syscallsOf(results, id) {
  const key = id.startsWith('probeMany') ? 'probeMany' : id;
  const s = results.syscalls?.[key];
  if (!s || s.error) return '';
  return Object.entries(s)
    .map(([k, v]) => `${v === 1 ? '' : `${v} `}${k}`)
    .join(' + ');
}

/** Target verdicts: { id: { target, ratio, met } }. */
function verdicts(results) {
  const rows = byId(results);
  const out = {};
  for (const [id, t] of Object.entries(TARGETS)) {
    const r = rows[id];
    if (!r) {
      out[id] = { target: `<= ${t.max}x ${t.of}`, met: null, why: results.loaded?.missing?.[id.replace(/\d+$/, '')] ?? 'not measured' };
      continue;
    }
    out[id] = { target: `<= ${t.max}x ${t.of}`, ratio: r.ratio.median, met: r.ratio.median <= t.max };
  }
  for (const [a, b] of VERSUS) {
    const ra = rows[a];
    const rb = rows[b];
    const key = `${a} vs ${b}`;
    if (!ra || !rb) {
      out[key] = { target: `faster than ${b}`, met: null, why: `${!ra ? a : b} not measured` };
      continue;
    }
    const ratios = ra.samples.map((v, i) => v / rb.samples[i]);
    const s = summary(ratios);
    out[key] = { target: `faster than ${b}`, ratio: s.median, ratioRange: [s.min, s.max], met: s.median < 1 };
  }
  return out;
}

function costRows(results) {
  const floor = results.cost.floor;
  const rows = [];
  for (const [key, label] of Object.entries(FLOOR_LABELS)) {
    const f = floor[key];
    const mt = floor[`${key}Mt`];
    if (f) rows.push(['floor (C)', label, '', ns(f.median), range(f, ns), mt ? `with a 2nd thread: ${ns(mt.median)}` : '', '', '', '']);
  }
  const v = verdicts(results);
  for (const r of results.cost.results) {
    const f = r.floor ? floor[r.floor] : null;
    const verdict = v[r.id];
    rows.push([
      r.group,
      r.label,
      r.group === 'sockstate' || r.group === 'pure JS' || r.group === 'peer' ? syscallsOf(results, r.id) : '',
      ns(r.ns.median),
      range(r.ns, ns),
      f ? FLOOR_LABELS[r.floor] ?? r.floor : '',
      r.ratio ? `${times(r.ratio.median)} (${range(r.ratio, times)})` : '',
      r.ratioMt ? times(r.ratioMt.median) : '',
      verdict && verdict.met !== null ? `${verdict.met ? 'met' : 'MISSED'} (<= ${TARGETS[r.id].max}x)` : '',
    ]);
  }
  return { header: ['group', 'call', 'syscalls per call', 'ns/op median', 'min–max', 'floor', 'x floor (min–max)', 'x threaded floor', 'target'], rows };
}

function versusRows(results) {
  const rows = byId(results);
  const v = verdicts(results);
  const out = [];
  for (const [a, b] of VERSUS) {
    const r = v[`${a} vs ${b}`];
    if (!rows[a] || !rows[b]) {
      out.push([a, '', b, '', '', r.why]);
      continue;
    }
    out.push([rows[a].label, ns(rows[a].ns.median), rows[b].label, ns(rows[b].ns.median), `${times(r.ratio)} (${times(r.ratioRange[0])}–${times(r.ratioRange[1])})`, r.met ? 'faster' : 'SLOWER']);
  }
  return { header: ['sockstate', 'ns/op', 'instead', 'ns/op', 'sockstate / instead', 'verdict'], rows: out };
}

function raceRows(results) {
  const r = results.race;
  const fmt = (x) => (x ? `${x.failed} of ${x.requests}${x.failed ? ` (${Object.entries(x.codes).map(([k, n]) => `${k} ${n}`).join(', ')})` : ''}` : 'not measured');
  const counters = (x) => (x?.agentCounters ? Object.entries(x.agentCounters).map(([k, n]) => `${k} ${n}`).join(', ') : '');
  return {
    header: ['scenario', 'http.Agent (stock) failed', 'sockstate Agent failed', 'sockstate Agent counter'],
    rows: [
      [`loop blocked ${r.blocked.blockMs} ms after each response`, fmt(r.blocked.stock), r.blocked.sockstate ? fmt(r.blocked.sockstate) : `not measured: ${results.loaded.missing.Agent ?? ''}`, counters(r.blocked.sockstate)],
      [`next request ${r.jittered.delayMs[0]}–${r.jittered.delayMs[1]} ms after a response, loop idle`, fmt(r.jittered.stock), r.jittered.sockstate ? fmt(r.jittered.sockstate) : 'not measured', counters(r.jittered.sockstate)],
    ],
  };
}

function closeRows(results) {
  const c = results.close;
  const fmt = (s) => (s.detected === 0 ? `not within ${c.waitMs} ms (0 of ${s.of})` : `${s.medianMs.toFixed(2)} (${s.p75Ms.toFixed(2)}, ${s.maxMs.toFixed(2)})${s.detected < s.of ? `, ${s.of - s.detected} of ${s.of} never` : ''}`);
  const rows = [
    ['idle', fmt(c.idle.end), `${fmt(c.idle.connectionState)}`, 'every 1 ms (setInterval)'],
    ['busy, 10 ms slices', fmt(c.busy.end), fmt(c.busy.connectionState), 'every 1 ms inside the slices'],
    ['busy, 10 ms slices', '', fmt(c.busy.connectionStateAtSliceStart), 'once per slice, at its start'],
    ['idle, socket not read (paused), peer sent 3 bytes before close', fmt(c.paused.end), fmt(c.paused.connectionState), 'every 1 ms (setInterval)'],
  ];
  return { header: ['event loop', "'end' event: median (p75, max) ms", 'connectionState: median (p75, max) ms', 'connectionState polled'], rows };
}

function memoryRows(results) {
  const mib = (x) => (x / 2 ** 20).toFixed(1);
  const rows = (results.memory ?? []).map((m) => {
    if (m.error) return [m.fn, '', '', '', '', m.error];
    const dh = m.after.heapUsed - m.before.heapUsed;
    const dr = m.after.rss - m.before.rss;
    const first = m.checkpoints[0];
    const last = m.checkpoints[m.checkpoints.length - 1];
    const drift = last.rss - first.rss;
    return [
      m.fn === 'probeMany' ? `probeMany (${m.sockets} sockets, per socket)` : m.fn === 'sockoptSoError' ? 'sockopt getsockopt(SO_ERROR) (peer)' : m.fn,
      `${(m.calls / 1e6).toLocaleString('en-US')} M`,
      `${mib(m.before.heapUsed)} → ${mib(m.after.heapUsed)} (${dh >= 0 ? '+' : ''}${mib(dh)})`,
      `${mib(m.before.rss)} → ${mib(m.after.rss)} (${dr >= 0 ? '+' : ''}${mib(dr)})`,
      `${mib(first.rss)} → ${mib(last.rss)}`,
      `${(drift / (last.calls - first.calls)).toFixed(2)}`,
    ];
  });
  return {
    header: ['function', 'calls', 'heap MiB before → after', 'RSS MiB before → after', `RSS MiB from 1st to last of ${(results.memory?.[0]?.checkpoints?.length ?? 0)} checkpoints`, 'RSS growth, bytes per call'],
    rows,
  };
}

function machineLine(results) {
  const m = results.machine;
  const id = m.cpuId ? ` (family ${m.cpuId.family}, model ${m.cpuId.model})` : '';
  return `${m.cores} cores, ${m.cpuModel}${id}${m.virtualization ? ` (${m.virtualization})` : ''}, ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node} (V8 ${m.v8}), floor built with ${results.floorBuild}`;
}

function sections(results) {
  const s = [];
  s.push(['Cost per call (ns/op; median of ' + results.cost.rounds + ' interleaved rounds; ratio to the floor taken per round)', costRows(results)]);
  s.push(['Against what a user would write instead (same socket, same rounds)', versusRows(results)]);
  s.push([`Keep-alive race (server closes idle connections after ${results.race.idleCloseMs} ms, no Keep-Alive header)`, raceRows(results)]);
  s.push(["Time from the peer's close() (another process) to detection", closeRows(results)]);
  if (results.memory) s.push(['Memory (fresh process per function, after full GC)', memoryRows(results)]);
  return s;
}

function missingLines(results) {
  return Object.entries(results.loaded?.missing ?? {}).map(([k, v]) => `not measured: ${k}: ${v}`);
}

function text(results) {
  const out = [`Machine: ${machineLine(results)}`, ''];
  for (const [title, t] of sections(results)) out.push(title, table(t.header, t.rows), '');
  out.push(...missingLines(results));
  out.push(`Wall time: ${results.wallSeconds} s`);
  return out.join('\n');
}

function markdown(results) {
  const out = [`Machine: ${machineLine(results)}.`, ''];
  for (const [title, t] of sections(results)) out.push(`**${title}**`, '', markdownTable(t.header, t.rows), '');
  const missing = missingLines(results);
  if (missing.length) out.push(...missing.map((l) => `- ${l}`), '');
  return out.join('\n');
}

if (require.main === module) {
  const file = process.argv.slice(2).find((a) => !a.startsWith('--')) ?? path.join(__dirname, 'results.json');
  const results = JSON.parse(fs.readFileSync(file, 'utf8'));
  process.stdout.write(`${process.argv.includes('--text') ? text(results) : markdown(results)}\n`);
}

module.exports = { text, markdown, verdicts };
