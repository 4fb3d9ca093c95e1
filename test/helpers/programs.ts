import * as fs from 'node:fs';

/** True when the tests run in CI (`CI=true`), where a missing server fails rather than skips. */
export const inCI = process.env.CI === 'true' || process.env.CI === '1';

/** The first of `candidates` that exists and is executable, or null. */
export function findProgram(candidates: readonly string[]): string | null {
  for (const file of candidates) {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // try the next one
    }
  }
  return null;
}

/**
 * Whether a suite that needs a real server can run. Outside CI a missing
 * program skips the suite with a message saying how to install it; in CI
 * it is a failure: this throws while the suite is collected.
 *
 * @param what - The server, for messages ("PostgreSQL").
 * @param program - Its path, from {@link findProgram}, or null.
 * @param install - The command that installs it ("apt-get install postgresql").
 */
export function serverAvailable(what: string, program: string | null, install: string): boolean {
  if (program !== null) return true;
  const message = `${what} is not installed: these tests need it (${install})`;
  if (inCI) throw new Error(`CI=true: ${message}`);
  console.warn(`skipped: ${message}`);
  return false;
}
