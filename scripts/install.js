'use strict';
// Builds the native probe on Linux. The package must still install where
// the addon cannot be built (another OS, no compiler): the JS layer then
// reports `supported: false` and answers from socket flags.
const { spawnSync } = require('node:child_process');

if (process.platform !== 'linux') {
  console.warn(
    `sockstate: the native probe is Linux-only; on ${process.platform} the ` +
      'API answers from socket flags (supported === false).',
  );
  process.exit(0);
}

const result = spawnSync('node-gyp', ['rebuild'], {
  stdio: 'inherit',
  shell: true,
});
if (result.status !== 0) {
  console.warn(
    'sockstate: building the native probe failed (see the output above); ' +
      'the API will answer from socket flags only (supported === false).',
  );
}
process.exit(0);
