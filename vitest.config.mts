import { defineConfig } from 'vitest/config';

// Two projects: every test against the native probe, and the public-API
// suites (*.api.test.ts) again with the addon disabled, so the fallback is
// held to the same interface.
export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'kernel', include: ['test/**/*.test.ts'] },
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
