// Minimal, order-preserving edits of a user's nix.conf and netrc: every other line, comment and
// blank stays as it was, and applying the same edit twice changes nothing the second time.
//
// nix.conf semantics (Nix's Config::set): lines apply in order; `NAME = …` replaces the value,
// `extra-NAME = …` appends to it; `#` starts a comment anywhere on a line. A list value is
// therefore "the last plain line, plus every extra- line after it". We add to the line that is in
// effect: the last `extra-NAME` line after the last `NAME` line, else the last `NAME` line, else a
// new `extra-NAME = VALUE` line at the end (extra-, so the system's own substituters and keys,
// e.g. cache.nixos.org, stay in effect).
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CliError } from './errors.ts';

/** The result of one edit: the new text and the lines it removed and added (for a diff-like report). */
export interface TextEdit {
  text: string;
  removed: string[];
  added: string[];
}

const unchanged = (text: string): TextEdit => ({ text, removed: [], added: [] });

interface Line {
  /** The part before any `#`. */
  content: string;
  /** `#…` or empty. */
  comment: string;
}

function splitComment(line: string): Line {
  const hash = line.indexOf('#');
  return hash < 0 ? { content: line, comment: '' } : { content: line.slice(0, hash), comment: line.slice(hash) };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function settingRe(name: string): RegExp {
  return new RegExp(`^\\s*(extra-)?${escapeRe(name)}\\s*=(.*)$`);
}

function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

const joinLines = (lines: string[]): string => (lines.length ? `${lines.join('\n')}\n` : '');

const values = (v: string): string[] => v.split(/\s+/).filter(Boolean);

function appendValue(line: string, value: string): string {
  const { content, comment } = splitComment(line);
  const base = content.replace(/\s+$/, '');
  return `${base} ${value}${comment ? ` ${comment}` : ''}`;
}

/** The values of list setting `name` in effect in `text` (plain line replaces, extra- appends). */
export function effectiveList(text: string, name: string): string[] {
  const re = settingRe(name);
  let out: string[] = [];
  for (const line of splitLines(text)) {
    const m = re.exec(splitComment(line).content);
    if (!m) continue;
    out = m[1] ? [...out, ...values(m[2])] : values(m[2]);
  }
  return out;
}

/** Adds `value` to list setting `name` unless it is already in effect (see the file comment for where). */
export function addToList(text: string, name: string, value: string): TextEdit {
  if (effectiveList(text, name).includes(value)) return unchanged(text);
  const lines = splitLines(text);
  const re = settingRe(name);
  let lastPlain = -1;
  let lastExtraAfterPlain = -1;
  lines.forEach((line, i) => {
    const m = re.exec(splitComment(line).content);
    if (!m) return;
    if (m[1]) lastExtraAfterPlain = i;
    else {
      lastPlain = i;
      lastExtraAfterPlain = -1;
    }
  });
  const target = lastExtraAfterPlain >= 0 ? lastExtraAfterPlain : lastPlain;
  if (target >= 0) {
    const before = lines[target];
    lines[target] = appendValue(before, value);
    return { text: joinLines(lines), removed: [before], added: [lines[target]] };
  }
  const added = `extra-${name} = ${value}`;
  return { text: joinLines([...lines, added]), removed: [], added: [added] };
}

/** The value of scalar setting `name` in effect (the last line), or undefined. */
export function getScalar(text: string, name: string): string | undefined {
  const re = settingRe(name);
  let out: string | undefined;
  for (const line of splitLines(text)) {
    const m = re.exec(splitComment(line).content);
    if (m && !m[1]) out = m[2].trim();
  }
  return out;
}

/** Sets scalar setting `name` to `value`: replaces the line in effect, or appends one. */
export function setScalar(text: string, name: string, value: string): TextEdit {
  const lines = splitLines(text);
  const re = settingRe(name);
  let last = -1;
  lines.forEach((line, i) => {
    const m = re.exec(splitComment(line).content);
    if (m && !m[1]) last = i;
  });
  const added = `${name} = ${value}`;
  if (last < 0) return { text: joinLines([...lines, added]), removed: [], added: [added] };
  if (getScalar(lines[last], name) === value) return unchanged(text);
  const before = lines[last];
  const { comment } = splitComment(before);
  lines[last] = `${added}${comment ? ` ${comment}` : ''}`;
  return { text: joinLines(lines), removed: [before], added: [lines[last]] };
}

// netrc: whitespace-separated tokens; an entry starts at `machine HOST` (or `default`) and runs to
// the next one. `macdef NAME` bodies run to the next blank line and are kept as they are.

interface NetrcEntry {
  start: number;
  end: number;
  host: string | undefined;
}

function netrcEntries(text: string): NetrcEntry[] {
  const entries: NetrcEntry[] = [];
  const tok = /\S+/g;
  let m: RegExpExecArray | null;
  let current: NetrcEntry | undefined;
  while ((m = tok.exec(text))) {
    if (m[0] === 'machine' || m[0] === 'default') {
      if (current) current.end = m.index;
      let host: string | undefined;
      if (m[0] === 'machine') host = tok.exec(text)?.[0];
      current = { start: m.index, end: text.length, host };
      entries.push(current);
    } else if (m[0] === 'macdef') {
      const blank = text.indexOf('\n\n', m.index);
      tok.lastIndex = blank < 0 ? text.length : blank + 2;
    }
  }
  return entries;
}

/** The password recorded for `host`, if any (used by tests and `loft use --dry-run`). */
export function netrcPassword(text: string, host: string): string | undefined {
  for (const e of netrcEntries(text)) {
    if (e.host !== host) continue;
    const m = /(?:^|\s)password\s+(\S+)/.exec(text.slice(e.start, e.end));
    if (m) return m[1];
  }
  return undefined;
}

const maskPassword = (entry: string) => entry.replace(/(password\s+)\S+/g, '$1********');

/** Replaces every entry for `host` with `machine HOST password TOKEN` (in place of the first), or appends it. */
export function upsertNetrc(text: string, host: string, password: string): TextEdit {
  const entry = `machine ${host} password ${password}`;
  const mine = netrcEntries(text).filter((e) => e.host === host);
  if (mine.length === 1 && text.slice(mine[0].start, mine[0].end).trim() === entry) return unchanged(text);
  const removed = mine.map((e) => maskPassword(text.slice(e.start, e.end).trim()));
  let out = '';
  let pos = 0;
  for (const e of mine) {
    out += text.slice(pos, e.start) + (e === mine[0] ? `${entry}\n` : '');
    pos = e.end;
  }
  out += text.slice(pos);
  if (mine.length === 0) out = `${out}${out === '' || out.endsWith('\n') ? '' : '\n'}${entry}\n`;
  return { text: out, removed, added: [maskPassword(entry)] };
}

/** The file's text, or undefined when it does not exist. */
export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

/**
 * Writes `text` to `file`, creating its directory. `mode` forces the file's mode (netrc: 0600);
 * otherwise an existing file keeps its own. nix.conf may be a symlink into a read-only store
 * (home-manager): then the write fails with a clear message instead of replacing the link.
 */
export async function writeConfigFile(file: string, text: string, mode?: number): Promise<void> {
  try {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    if (mode !== undefined) {
      // A fresh file never exists with a wider mode, not even for an instant.
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, text, { mode });
      await chmod(tmp, mode);
      await rename(tmp, file);
      return;
    }
    const existing = await stat(file).catch(() => undefined);
    await writeFile(file, text, existing ? {} : { mode: 0o644 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const hint = code === 'EROFS' || code === 'EACCES' || code === 'EPERM' ? 'is it managed by home-manager or NixOS? add the lines yourself (see --dry-run)' : undefined;
    throw new CliError(`cannot write ${file}: ${(e as Error).message}`, hint, { cause: e });
  }
}
