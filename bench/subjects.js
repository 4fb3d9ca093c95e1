'use strict';
// What the benchmarks measure, loaded from the compiled package (lib/):
// the public exports first, then the module that defines each function if
// the index does not export it yet. A missing piece is reported, not faked.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const lib = path.join(root, 'lib');

const sockstate = require('..');

function fromModule(file, name) {
  const full = path.join(lib, file);
  if (!fs.existsSync(full)) return undefined;
  return require(full)[name];
}

/** `name` from the index, else from lib/<file>; `undefined` if neither has it. */
function pick(name, ...files) {
  if (typeof sockstate[name] === 'function') return { fn: sockstate[name], from: 'index' };
  for (const file of files) {
    const fn = fromModule(file, name);
    if (typeof fn === 'function') return { fn, from: `lib/${file}` };
  }
  return undefined;
}

function missing(name, files) {
  return `${name} is not in lib/index.js nor in ${files.map((f) => `lib/${f}`).join(', ')} (src/${files[0].replace(/\.js$/, '.ts')} not written or not compiled yet)`;
}

const found = {};
const absent = {};
for (const [name, files] of [
  ['isReusable', ['policy/reuse.js']],
  ['checkReusable', ['policy/reuse.js']],
  ['probeMany', ['probe/probe-many.js']],
  ['Agent', ['integrations/agent.js']],
  ['HttpsAgent', ['integrations/agent.js']],
]) {
  const got = pick(name, ...files);
  if (got) found[name] = got;
  else absent[name] = missing(name, files);
}

// Other exports of probe-many.js (a typed-array variant, if one exists):
// any exported function whose name starts with "probeMany" besides probeMany.
const probeManyVariants = {};
for (const source of [sockstate, fs.existsSync(path.join(lib, 'probe', 'probe-many.js')) ? require(path.join(lib, 'probe', 'probe-many.js')) : {}]) {
  for (const [k, v] of Object.entries(source)) {
    if (typeof v === 'function' && /^probeMany./.test(k) && !(k in probeManyVariants)) probeManyVariants[k] = v;
  }
}

const { native } = require(path.join(lib, 'probe', 'native.js'));

module.exports = {
  sockstate,
  native,
  supported: sockstate.supported,
  connectionState: sockstate.connectionState,
  tcpInfo: sockstate.tcpInfo,
  takeSocketError: sockstate.takeSocketError,
  isReusable: found.isReusable?.fn,
  checkReusable: found.checkReusable?.fn,
  probeMany: found.probeMany?.fn,
  probeManyVariants,
  Agent: found.Agent?.fn,
  HttpsAgent: found.HttpsAgent?.fn,
  found: Object.fromEntries(Object.entries(found).map(([k, v]) => [k, v.from])),
  absent,
};
