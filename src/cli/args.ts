/**
 * Command-line parsing for `sockstate`: options, `host:port` endpoints and
 * the usage errors that end the command with exit code 2.
 *
 * @packageDocumentation
 */
import * as net from 'node:net';

/** Exit code for bad input: a usage mistake, a name that does not resolve, a refused connection. */
export const EXIT_USAGE = 2;

/**
 * Bad input: printed as `sockstate: <message>` on stderr, then `help` if
 * given, exit code {@link EXIT_USAGE}.
 */
export class UsageError extends Error {
  /** Machine-readable kind of mistake (`'ERR_USAGE'`, `'ENOTFOUND'`, `'ECONNREFUSED'`, …). */
  readonly code: string;
  /** Help text printed after the message, after a blank line; undefined for the message alone. */
  readonly help: string | undefined;

  /**
   * @param message - What is wrong, phrased for the user.
   * @param code - The kind of mistake.
   * @param help - Help text to print after the message (for a mistake in
   *   the command itself, where the list of commands is the answer).
   */
  constructor(message: string, code = 'ERR_USAGE', help?: string) {
    super(message);
    this.name = 'UsageError';
    this.code = code;
    this.help = help;
  }
}

/**
 * True when `-h` or `--help` is among the options (before a `--`): help
 * asked for anywhere on a command's line wins over any mistake in the rest,
 * as the user wants to read how to use it.
 */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false;
    if (arg === '-h' || arg === '--help') return true;
  }
  return false;
}

/** How an option is given: alone (`--json`) or with a value (`--interval 500`). */
export type OptionKind = 'flag' | 'value';

/** Parsed options: flags as `true`, values as strings; plus positionals. */
export interface ParsedOptions {
  /** Option values by long name (without `--`). */
  readonly options: ReadonlyMap<string, string | true>;
  /** Arguments that are not options, in order. */
  readonly positionals: readonly string[];
}

/**
 * Parses `--name`, `--name value`, `--name=value` and `-x` aliases; `--`
 * ends the options.
 *
 * @param argv - The arguments after the subcommand.
 * @param spec - Known options by long name.
 * @param aliases - Short options, e.g. `{ h: 'help' }`.
 * @throws UsageError for an unknown option, a missing value, or a value
 *   given to a flag.
 */
export function parseOptions(
  argv: readonly string[],
  spec: Readonly<Record<string, OptionKind>>,
  aliases: Readonly<Record<string, string>> = {},
): ParsedOptions {
  const options = new Map<string, string | true>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else {
      const alias = aliases[arg.slice(1)];
      if (alias === undefined) throw new UsageError(`unknown option '${arg}'`);
      name = alias;
    }
    const kind = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (kind === undefined) throw new UsageError(`unknown option '${arg}'`);
    if (kind === 'flag') {
      if (inline !== undefined) throw new UsageError(`option '--${name}' takes no value`);
      options.set(name, true);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined) throw new UsageError(`option '--${name}' needs a value`);
      i++;
    }
    options.set(name, value);
  }
  return { options, positionals };
}

/** Where to connect: a host name or address and a port. */
export interface Endpoint {
  /** Host name or address as given, without IPv6 brackets. */
  readonly host: string;
  /** TCP port, 1–65535. */
  readonly port: number;
}

/**
 * Parses `host:port`, `[ipv6]:port` or `name:port`.
 *
 * @throws UsageError when the port is missing, not a number or out of
 *   range, the host is empty, or an IPv6 address lacks brackets.
 */
export function parseEndpoint(text: string): Endpoint {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw new UsageError(`'${text}': missing ']' after the IPv6 address`);
    host = text.slice(1, close);
    if (!net.isIPv6(host)) throw new UsageError(`'${text}': '${host}' is not an IPv6 address`);
    const rest = text.slice(close + 1);
    if (rest === '' || rest === ':') throw new UsageError(`'${text}': no port (expected [${host}]:port)`);
    if (!rest.startsWith(':')) throw new UsageError(`'${text}': expected ':port' after ']'`);
    portText = rest.slice(1);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw new UsageError(`'${text}': no port (expected host:port)`);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) {
      throw new UsageError(`'${text}': put an IPv6 address in brackets, as in [::1]:port`);
    }
    if (host === '') throw new UsageError(`'${text}': no host (expected host:port)`);
    if (portText === '') throw new UsageError(`'${text}': no port (expected host:port)`);
  }
  if (!/^[0-9]+$/.test(portText)) throw new UsageError(`'${text}': port '${portText}' is not a number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new UsageError(`'${text}': port ${portText} is out of range (1-65535)`);
  return { host, port };
}

/**
 * Parses a whole number option within `[min, max]`.
 *
 * @throws UsageError naming the option when the value is not a whole number
 *   or is out of range.
 */
export function parseInteger(name: string, text: string, min: number, max: number, unit = ''): number {
  const suffix = unit === '' ? '' : ` ${unit}`;
  if (!/^[0-9]+$/.test(text)) {
    throw new UsageError(`option '--${name}' must be a whole number${unit === '' ? '' : ` of ${unit}`} from ${min} to ${max}, not '${text}'`);
  }
  const value = Number(text);
  if (value < min || value > max) {
    throw new UsageError(`option '--${name}' must be from ${min} to ${max}${suffix}, not ${text}`);
  }
  return value;
}

/**
 * True for names under the reserved `.invalid` top-level domain
 * (RFC 6761 §6.4): they can never resolve, so no lookup is made.
 */
export function isReservedInvalid(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return name === 'invalid' || name.endsWith('.invalid');
}
