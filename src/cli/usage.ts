/**
 * Help text and version of the `sockstate` command.
 *
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from './args';

/** `sockstate --help`. */
export const HELP = `Usage: sockstate <command> [options]

What state a TCP connection is really in, from the kernel.

Commands:
  demo                 Show, on loopback, what Node's socket flags say next to
                       what the kernel says, in the situations that matter.
                       Exit code 0 when every situation behaved as the kernel
                       must, 1 otherwise. Root adds a silently vanishing peer
                       (a network namespace with its link cut).
  watch <host:port>    Connect and show a live view of that connection:
                       status, TCP state, RTT, cwnd, bytes, retransmits.
                       Also [::1]:port and names (localhost:port).
  help [command]       Show this text, or a command's full help (also
                       sockstate <command> --help).

Options:
  -h, --help           Show this text.
  -v, --version        Print the version.

Exit codes: 0 success, 1 failure, 2 bad input (usage, a name that does not
resolve, a refused connection). Help asked for is printed on stdout; a
usage mistake on stderr.
Colour only when stdout is a terminal and NO_COLOR is not set.
`;

/** `sockstate demo --help`. */
export const DEMO_HELP = `Usage: sockstate demo

Starts a peer as a child process on loopback and walks through:
  1. the peer closes cleanly          (expected: peerClosed, CLOSE_WAIT)
  2. the peer resets                  (expected: reset, CLOSE, error pending)
  3. we half-close                    (expected: localClosed, FIN_WAIT2)
  4. a stale keep-alive connection    (expected: peerClosed, CLOSE_WAIT)
  5. the peer vanishes silently, root only: a network namespace whose link
     is cut, until TCP_USER_TIMEOUT fires (expected: errored, CLOSE)
For each, it prints at the same instant what Node's flags say (destroyed,
readyState, readableEnded) and what sockstate says (status, tcpState,
pendingError, unreadBytes), and how long after the peer acted each noticed.

Exit code 0 when every scenario behaved as the kernel must, 1 otherwise.
Ctrl-C, SIGTERM or SIGHUP cleans up (peers, namespace, veth pair) and exits
130, 143 or 129.
`;

/** `sockstate watch --help`. */
export const WATCH_HELP = `Usage: sockstate watch [options] <host:port>

Connects to host:port ([ipv6]:port, name:port) and shows the connection
live, refreshed in place on a terminal (one block per sample otherwise),
until Ctrl-C or until the connection ends; then prints why it ended:
peer closed, reset, timed out, interrupted, count reached.
Received data is read and discarded; nothing is sent unless --stdin.

Options:
  --interval <ms>   Time between samples, 10-3600000 (default 1000).
  --count <n>       Stop after n samples.
  --stdin           Send what arrives on stdin to the peer (the end of stdin
                    is not passed on), so that rtt, cwnd and bytes sent move.
  --json            One JSON object per line instead: {"type":"connected",...},
                    then {"type":"sample",...} per sample, then
                    {"type":"end","reason":...}. 64-bit counters (bytesSent,
                    bytesReceived, bytesAcked) are exact JSON integers;
                    JSON.parse reads them exactly up to 2^53 bytes. Fields the
                    running kernel does not report are null; without the
                    native addon ("source":"flags") every tcp_info field is.
  -h, --help        Show this text.

Exit codes: 0 when the connection ended (peer closed, reset, timed out) or
on Ctrl-C; 1 on another error; 2 for bad input, a name that does not
resolve, or a connection that is refused or cannot be made.
`;

// A Map, not an object: `help __proto__` or `help toString` must find nothing.
const TOPICS: ReadonlyMap<string, string> = new Map([
  ['demo', DEMO_HELP],
  ['watch', WATCH_HELP],
  ['help', HELP],
  ['-h', HELP],
  ['--help', HELP],
]);

/**
 * The text `sockstate help [command]` prints: this command's help without a
 * topic, else that command's full help (`help help` and `help --help`
 * included, which is this command's).
 *
 * @param topics - The arguments after `help`.
 * @throws UsageError for an unknown topic (with {@link HELP}, which lists
 *   the commands) or more than one.
 */
export function helpText(topics: readonly string[]): string {
  if (topics.length === 0) return HELP;
  if (topics.length > 1) throw new UsageError(`help takes one command, got ${topics.length}: ${topics.join(' ')}`);
  const text = TOPICS.get(topics[0]!);
  if (text === undefined) throw new UsageError(`no help for '${topics[0]}': commands are demo, watch`, 'ERR_USAGE', HELP);
  return text;
}

/**
 * The package version, read from package.json at run time (this module
 * sits two directories below it, in lib/cli/ or src/cli/).
 */
export function packageVersion(): string {
  const file = path.join(__dirname, '..', '..', 'package.json');
  const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown };
  if (typeof pkg.version !== 'string') throw new Error(`${file} has no version`);
  return pkg.version;
}
