/**
 * Reading the docs as test input: their fenced code blocks and the
 * `<!-- test: … -->` markers that say what to do with them, headings and
 * their GitHub anchors, links, and the normalisation that decides when a
 * shown output and a real run agree. The convention is described in
 * CONTRIBUTING.md ("The docs are tested").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Languages a fenced block may have. */
export const LANGUAGES = ['js', 'ts', 'sh', 'text', 'console'] as const;

/** What a marker asks for. */
export type MarkerKind = 'run' | 'output' | 'console' | 'excerpt';

/** A parsed `<!-- test: kind [file] [options] -->` comment. */
export interface Marker {
  readonly kind: MarkerKind;
  /** `examples/NAME` for `run` and `excerpt`. */
  readonly file: string | undefined;
  /** Bare words (`root`, `postgres`) as `true`, `key=value` as strings. */
  readonly options: ReadonlyMap<string, string | true>;
  /** The comment's line, 1-based. */
  readonly line: number;
}

/** One fenced code block of a Markdown file. */
export interface Block {
  /** Path relative to the repository root. */
  readonly file: string;
  /** The opening fence's line, 1-based. */
  readonly line: number;
  /** The info string's first word, or '' for none. */
  readonly lang: string;
  /** The content, without the fences and the fence's indentation, ending in a newline. */
  readonly code: string;
  /** The marker on the line before, if any. */
  readonly marker: Marker | undefined;
  /** True when only blank lines separate it from the previous block's closing fence. */
  readonly followsPrevious: boolean;
}

/** A Markdown file: its blocks, headings' anchors, links, and problems found while reading it. */
export interface Page {
  readonly file: string;
  readonly blocks: readonly Block[];
  readonly anchors: ReadonlySet<string>;
  /** `[text](target)` links outside code, with their line. */
  readonly links: readonly { target: string; line: number }[];
  readonly problems: readonly string[];
}

const MARKER = /^<!--\s*test:\s*(.*?)\s*-->$/;
const FENCE = /^(\s*)(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;

function parseMarker(text: string, line: number, problems: string[], where: string): Marker | undefined {
  const words = text.split(/\s+/).filter((w) => w !== '');
  const kind = words.shift();
  if (kind !== 'run' && kind !== 'output' && kind !== 'console' && kind !== 'excerpt') {
    problems.push(`${where}: unknown marker kind '${kind ?? ''}' (run, output, console, excerpt)`);
    return undefined;
  }
  let file: string | undefined;
  if ((kind === 'run' || kind === 'excerpt') && words[0] !== undefined && words[0].startsWith('examples/')) file = words.shift();
  if (kind === 'excerpt' && file === undefined) problems.push(`${where}: 'excerpt' needs the file it quotes (examples/NAME)`);
  const options = new Map<string, string | true>();
  for (const word of words) {
    const eq = word.indexOf('=');
    if (word.startsWith('env:')) options.set(word, true);
    else if (eq > 0) options.set(word.slice(0, eq), word.slice(eq + 1));
    else options.set(word, true);
  }
  return { kind, file, options, line };
}

/**
 * The GitHub anchor of a heading (github-slugger): inline markup dropped,
 * lowercased, punctuation removed, spaces turned into hyphens.
 */
export function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`/g, '')
    .replace(/(\*\*|__|\*)/g, '');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Reads one Markdown file of the repository. */
export function readPage(root: string, file: string): Page {
  const lines = fs.readFileSync(path.join(root, file), 'utf8').split('\n');
  const blocks: Block[] = [];
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const links: { target: string; line: number }[] = [];
  const problems: string[] = [];
  let pending: Marker | undefined;
  let lastClose = -2;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const where = `${file}:${i + 1}`;
    const marker = MARKER.exec(line.trim());
    if (marker) {
      if (pending) problems.push(`${file}:${pending.line}: a marker not followed by a code block`);
      pending = parseMarker(marker[1]!, i + 1, problems, where);
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const [, indent, ticks, lang] = fence;
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length; j++) {
        const closing = lines[j]!;
        if (closing.trim().startsWith(ticks!) && closing.trim().replace(/[`~]/g, '') === '') break;
        body.push(closing.startsWith(indent!) ? closing.slice(indent!.length) : closing.trimStart());
      }
      if (j === lines.length) problems.push(`${where}: a code block that is never closed`);
      const between = lines.slice(lastClose + 1, i);
      blocks.push({
        file,
        line: i + 1,
        lang: lang!,
        code: `${body.join('\n')}\n`,
        marker: pending,
        followsPrevious: lastClose >= 0 && between.every((l) => l.trim() === ''),
      });
      pending = undefined;
      lastClose = j;
      i = j;
      continue;
    }
    if (pending && line.trim() !== '') {
      problems.push(`${file}:${pending.line}: a marker not followed by a code block`);
      pending = undefined;
    }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      const base = slug(heading[2]!);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    // Links outside inline code.
    const prose = line.replace(/`[^`]*`/g, '');
    for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) links.push({ target: m[1]!, line: i + 1 });
  }
  if (pending) problems.push(`${file}:${pending.line}: a marker not followed by a code block`);
  return { file, blocks, anchors, links, problems };
}

/** Every Markdown file the docs test reads: README.md, CONTRIBUTING.md and docs/**. */
export function docFiles(root: string): string[] {
  const out = ['README.md', 'CONTRIBUTING.md'];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const rel = path.posix.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.md')) out.push(rel);
    }
  };
  walk('docs');
  return out;
}

/**
 * Whether `block` is `source` whole, or an excerpt of it: split at lines
 * starting with `// …` (lines left out), each part is a run of the file's
 * lines, in order, indentation aside.
 */
export function isExcerpt(block: string, source: string): boolean {
  if (block === source) return true;
  const file = source.split('\n').map((l) => l.trim());
  const parts: string[][] = [[]];
  for (const raw of block.replace(/\n$/, '').split('\n')) {
    const l = raw.trim();
    if (l.startsWith('// …')) parts.push([]);
    else parts[parts.length - 1]!.push(l);
  }
  let from = 0;
  for (const part of parts) {
    if (part.length === 0) continue;
    let found = -1;
    for (let i = from; i + part.length <= file.length && found < 0; i++) {
      if (part.every((l, k) => file[i + k] === l)) found = i;
    }
    if (found < 0) return false;
    from = found + part.length;
  }
  return true;
}

/** The named rules of `vary=`; see CONTRIBUTING.md. */
export const VARY_RULES = ['versions', 'numbers', 'spacing', 'repeats'] as const;

/**
 * Output as compared: lines without trailing spaces or trailing blank
 * lines, with what may vary replaced by placeholders. Applied to the shown
 * and the real output alike.
 */
export function normalise(text: string, vary: readonly string[]): string[] {
  const custom = vary.filter((v) => v.startsWith('/') && v.endsWith('/')).map((v) => new RegExp(v.slice(1, -1), 'g'));
  let lines = text.replace(/\r/g, '').split('\n').map((l) => l.trimEnd());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  lines = lines.map((l) => {
    if (l === '…') return l;
    let s = l
      .replace(/(127\.0\.0\.1|localhost|\[::1\]):\d+/g, '$1:<port>')
      .replace(/"(localPort|remotePort)":\d+/g, '"$1":<port>');
    for (const re of custom) s = s.replace(re, '<vary>');
    if (vary.includes('versions')) s = s.replace(/\bv\d+\.\d+\.\d+\b/g, 'v<version>');
    if (vary.includes('numbers')) s = s.replace(/\d+(?:\.\d+)?/g, '<n>').replace(/[▁▂▃▄▅▆▇█]+/g, '<bars>');
    if (vary.includes('spacing')) s = s.replace(/ {2,}/g, ' ');
    return s;
  });
  if (vary.includes('repeats')) lines = lines.filter((l, i) => i === 0 || l !== lines[i - 1]);
  return lines;
}

/** Whether normalised actual lines match normalised shown lines, where a shown `…` line stands for any number of lines. */
export function matches(shown: readonly string[], actual: readonly string[]): boolean {
  const at = (i: number, j: number): boolean => {
    if (i === shown.length) return j === actual.length;
    if (shown[i] === '…') {
      for (let k = j; k <= actual.length; k++) if (at(i + 1, k)) return true;
      return false;
    }
    return j < actual.length && shown[i] === actual[j] && at(i + 1, j + 1);
  };
  return at(0, 0);
}

/** The `vary=` list of a marker's options, split at commas outside /…/. */
export function varyList(value: string | true | undefined): string[] {
  if (value === undefined || value === true) return [];
  const out: string[] = [];
  let current = '';
  let inRegex = false;
  for (const ch of value) {
    if (ch === '/' ) inRegex = !inRegex;
    if (ch === ',' && !inRegex) {
      out.push(current);
      current = '';
    } else current += ch;
  }
  if (current !== '') out.push(current);
  return out;
}
