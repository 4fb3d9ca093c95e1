/**
 * Text helpers for the `sockstate` command: colours, column alignment,
 * units and the RTT sparkline. No I/O here.
 *
 * @packageDocumentation
 */

/** Colour functions; identity functions when colour is off. */
export interface Paint {
  /** True when the functions add ANSI colour codes. */
  readonly enabled: boolean;
  /** Good news (an open connection, a scenario that behaved). */
  green(text: string): string;
  /** A connection on its way out (peerClosed, localClosed, closing). */
  yellow(text: string): string;
  /** Failures (reset, errored, a scenario that misbehaved). */
  red(text: string): string;
  /** Secondary text. */
  dim(text: string): string;
  /** Headings. */
  bold(text: string): string;
}

/**
 * Whether to colour output written to `stream`: only a terminal, and never
 * when `NO_COLOR` is set to a non-empty value (https://no-color.org).
 */
export function colorWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  const noColor = env.NO_COLOR;
  if (noColor !== undefined && noColor !== '') return false;
  return stream.isTTY === true;
}

/** Builds the colour functions, enabled or not. */
export function createPaint(enabled: boolean): Paint {
  const wrap = (open: number, close: number) => (text: string) =>
    enabled ? `\x1b[${open}m${text}\x1b[${close}m` : text;
  return {
    enabled,
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    red: wrap(31, 39),
    dim: wrap(2, 22),
    bold: wrap(1, 22),
  };
}

// Matches the SGR sequences createPaint() emits, to measure visible width.
const SGR = /\x1b\[[0-9;]*m/g;

/** The length of `text` as displayed, without ANSI colour codes. */
export function visibleLength(text: string): number {
  return text.replace(SGR, '').length;
}

/** Pads `text` on the right to `width` visible characters. */
export function padVisible(text: string, width: number): string {
  const missing = width - visibleLength(text);
  return missing > 0 ? text + ' '.repeat(missing) : text;
}

/**
 * Aligns rows into columns separated by two spaces; every row is prefixed
 * with `indent`. Trailing spaces are trimmed.
 */
export function alignColumns(rows: readonly (readonly string[])[], indent = ''): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, visibleLength(cell));
    });
  }
  return rows.map((row) => {
    const cells = row.map((cell, i) => (i === row.length - 1 ? cell : padVisible(cell, widths[i] ?? 0)));
    return (indent + cells.join('  ')).replace(/\s+$/, '');
  });
}

/** The colour that goes with a connection status. */
export function paintStatus(paint: Paint, status: string): string {
  switch (status) {
    case 'open':
    case 'listening':
      return paint.green(status);
    case 'peerClosed':
    case 'localClosed':
    case 'closing':
    case 'connecting':
      return paint.yellow(status);
    case 'reset':
    case 'errored':
      return paint.red(status);
    default:
      return status;
  }
}

/** A duration in milliseconds, with a precision that suits its size. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 10_000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A duration given in microseconds (the unit of tcp_info's RTT fields). */
export function formatUs(us: number | undefined): string {
  return us === undefined ? 'n/a' : formatMs(us / 1000);
}

const BYTE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** A byte count: exact below 1 KiB, else scaled with one decimal. */
export function formatBytes(bytes: bigint | number | undefined): string {
  if (bytes === undefined) return 'n/a';
  const n = typeof bytes === 'bigint' ? Number(bytes) : bytes;
  if (n < 1024) return `${n} B`;
  let value = n;
  let unit = 0;
  while (value >= 1024 * 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${(value / 1024).toFixed(1)} ${BYTE_UNITS[unit]}`;
}

const BARS = '▁▂▃▄▅▆▇█';

/**
 * A one-line chart of `values`, scaled from their minimum to their maximum.
 * Equal values draw as the lowest bar; an empty series as an empty string.
 */
export function sparkline(values: readonly number[]): string {
  if (values.length === 0) return '';
  const min = Math.min(...values);
  const max = Math.max(...values);
  const span = max - min;
  return values
    .map((v) => {
      const level = span === 0 ? 0 : Math.round(((v - min) / span) * (BARS.length - 1));
      return BARS[level];
    })
    .join('');
}

/**
 * A flat object as one JSON line, with `bigint` values written as exact
 * JSON integers (JSON.stringify rejects bigint; a string would make
 * scripts convert every counter).
 */
export function jsonLine(record: Readonly<Record<string, string | number | boolean | bigint | null | undefined>>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (value === undefined) continue;
    const text = typeof value === 'bigint' ? value.toString() : JSON.stringify(value);
    parts.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${parts.join(',')}}`;
}

// C0 and C1 controls, DEL, and the Unicode line, paragraph and bidi
// controls: anything a terminal could act on or that could disguise text.
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from the command line or the network made safe to print on a
 * terminal: every control character (ESC, CSI, BEL, CR, newline, bidi
 * overrides, …) is shown as a `\xHH` / `\uHHHH` escape instead of being
 * sent, so an argument cannot move the cursor, recolour or retitle the
 * terminal, or hide part of the message.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
