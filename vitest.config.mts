import { defineConfig } from 'vitest/config';

// Test files that block the event loop, race a server's timers or count on
// the kernel's timing: they run one at a time ('kernel'), while the rest,
// which only do I/O of their own ('kernel-io', and the public-API suites
// again with the addon disabled, 'fallback'), run beside them in a second
// vitest process (scripts/test.js).
const timed = [
  'agent-dropin',
  'agent-examples',
  'agent-handoff',
  'agent-proxy',
  'agent-transports',
  'agent-tuning.api',
  'agent',
  'connection-state.api',
  'examples',
  'mysql2-example',
  'mysql2-unasked',
  'mysql2',
  'netns',
  'pg-examples',
  'pg-notify',
  'pg',
  'pool',
  'reliability-codes',
  'reliability-demo-signals',
  'reliability-keep',
  'reliability-take-socket-error',
  'reliability-watch',
  'replay',
  'reuse.api',
  'reuse',
  'sockopt',
  'soft-error',
  'take-socket-error.api',
  'tls.api',
  'undici-dropin',
  'undici-module',
  'undici',
  'watch',
].map((name) => `test/${name}.test.ts`);

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'kernel', include: timed },
      },
      {
        extends: true,
        test: { name: 'kernel-io', include: ['test/**/*.test.ts'], exclude: timed },
      },
      {
        extends: true,
        test: {
          name: 'fallback',
          include: ['test/**/*.api.test.ts'],
          env: { SOCKSTATE_FORCE_FALLBACK: '1' },
        },
      },
    ],
  },
});
