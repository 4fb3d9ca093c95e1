'use strict';
// Where a Node-API call's time goes (a diagnostic, not part of
// `npm run bench`): `node bench/napi-overhead.js`. Builds
// bench/napi-overhead.cc with the machine's c++ against Node's headers
// into bench/.build/, then measures in interleaved rounds:
// - empty calls: plain Node-API, node-addon-api with sockstate's fd guard,
//   and with its Int32Array guard;
// - poll and TCP_INFO + poll behind each style, with the output buffer
//   passed per call or bound once;
// - the same syscalls in a C loop inside this (multi-threaded) process.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { once } = require('node:events');
const { summary, table } = require('./util');

const build = path.join(__dirname, '.build');
const addon = path.join(build, 'napi-overhead.node');
const include = path.join(path.dirname(process.execPath), '..', 'include', 'node');

async function main() {
  fs.mkdirSync(build, { recursive: true });
  execFileSync(process.env.CXX || 'c++', [
    '-O2', '-std=c++17', '-shared', '-fPIC', '-DNAPI_VERSION=8', '-DNODE_ADDON_API_DISABLE_DEPRECATED', '-DNAPI_DISABLE_CPP_EXCEPTIONS',
    `-I${include}`, `-I${require('node-addon-api').include_dir}`, '-o', addon, path.join(__dirname, 'napi-overhead.cc'),
  ], { stdio: 'inherit' });
  const x = require(addon);
  const { native } = require('../lib/probe/native.js');
  const server = net.createServer(() => {}).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket = net.connect(server.address().port, '127.0.0.1');
  await once(socket, 'connect');
  await new Promise((r) => setTimeout(r, 100));
  const fd = socket._handle.fd;
  const out = new Int32Array(native.probeSlots.COUNT);
  x.bind(out);
  const cases = [
    ['empty call, plain Node-API (int32 fd)', x.noopRaw, fd, 1],
    ['empty call, node-addon-api + fd guard', x.noopFd, fd, 1],
    ['empty call, + Int32Array guard', (f) => x.noopArr(f, out), fd, 1],
    ['poll, C loop inside this process, per call', (f) => x.pollLoop(f, 100), fd, 100],
    ['poll, plain Node-API', x.pollRaw, fd, 1],
    ['poll, node-addon-api + fd guard', x.pollApi, fd, 1],
    ["poll, sockstate's binding", native.poll, fd, 1],
    ['TCP_INFO + poll, C loop inside this process', (f) => x.probeLoop(f, 100), fd, 100],
    ['TCP_INFO + poll, buffer bound once', x.probeCached, fd, 1],
    ['TCP_INFO + poll, one typedarray_info call', (f) => x.probeOneInfo(f, out), fd, 1],
    ['TCP_INFO + poll, Int32Array guard', (f) => x.probeApi(f, out), fd, 1],
    ["TCP_INFO + poll, sockstate's binding.probe", (f) => native.probe(f, out), fd, 1],
  ];
  const samples = cases.map(() => []);
  const loops = cases.map(([, fn, arg]) => {
    const loop = new Function('fn', 'arg', 'n', 'let s = 0; for (let i = 0; i < n; i++) s += fn(arg) | 0; return s;');
    return (n) => loop(fn, arg, n);
  });
  const calls = (per) => Math.max(1, Math.round(60000 / per));
  cases.forEach(([, , , per], i) => loops[i](calls(per)));
  for (let r = 0; r < 11; r++) {
    for (let k = 0; k < cases.length; k++) {
      const i = (k + r) % cases.length;
      const n = calls(cases[i][3]);
      const t0 = process.hrtime.bigint();
      loops[i](n);
      samples[i].push(Number(process.hrtime.bigint() - t0) / (n * cases[i][3]));
    }
  }
  const rows = cases.map(([label], i) => {
    const s = summary(samples[i]);
    return [label, s.median.toFixed(1), `${s.min.toFixed(1)}–${s.max.toFixed(1)}`];
  });
  process.stdout.write(`${table(['call', 'ns/op median', 'min–max'], rows)}\n`);
  socket.destroy();
  server.close();
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
