#!/usr/bin/env node
/**
 * The `sockstate` command: dispatches to `demo`, `watch`, help and version.
 * Exit codes: 0 success, 1 failure, 2 bad input.
 *
 * @packageDocumentation
 */
import { EXIT_USAGE, UsageError, wantsHelp } from './args';
import { runDemo } from './demo';
import { colorWanted, createPaint, printable } from './format';
import { DEMO_HELP, HELP, helpText, packageVersion, WATCH_HELP } from './usage';
import { parseWatchArgs, runWatch } from './watch';

// Help that was asked for is the output: stdout, exit 0. A mistake in the
// command line is a diagnostic: stderr, exit 2 (see UsageError).
async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  const paint = createPaint(colorWanted(process.stdout));
  switch (command) {
    case undefined:
      process.stderr.write(HELP);
      return EXIT_USAGE;
    case 'help':
    case '-h':
    case '--help':
      process.stdout.write(helpText(rest));
      return 0;
    case '-v':
    case '--version':
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    case 'demo':
      if (wantsHelp(rest)) {
        process.stdout.write(DEMO_HELP);
        return 0;
      }
      if (rest.length > 0) throw new UsageError(`demo takes no arguments, got: ${rest.join(' ')}`);
      return runDemo(process.stdout, paint);
    case 'watch': {
      const options = parseWatchArgs(rest);
      if (options === 'help') {
        process.stdout.write(WATCH_HELP);
        return 0;
      }
      return runWatch(options, { stream: process.stdout, live: process.stdout.isTTY === true && !options.json, paint });
    }
    default:
      throw new UsageError(`unknown command '${command}'`, 'ERR_USAGE', HELP);
  }
}

// A reader that goes away (`sockstate watch --json … | head`) ends the run.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      // Messages quote the user's arguments: never echo their control characters.
      process.stderr.write(`sockstate: ${printable(err.message)}\n${err.help === undefined ? '' : `\n${err.help}`}`);
      process.exitCode = EXIT_USAGE;
      return;
    }
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`sockstate: ${text.split('\n').map(printable).join('\n')}\n`);
    process.exitCode = 1;
  },
);
