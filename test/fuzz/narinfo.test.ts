// Property-based fuzzing of the narinfo parser: any text is a NixFormatError or a narinfo whose
// every field is valid, which formats and re-parses to the same value.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { NixFormatError } from '../../src/nix/errors.ts';
import { parseSha256 } from '../../src/nix/hash.ts';
import { formatNarInfo, parseNarInfo, type NarInfo } from '../../src/nix/narinfo.ts';
import { parseStorePath, parseStorePathBaseName } from '../../src/nix/store-path.ts';
import { FIXTURES } from '../unit/nix/fixture-trees.ts';
import { fuzzParams } from './runs.ts';

const CACHE = join(FIXTURES, 'cache');
const REAL = readdirSync(CACHE)
  .filter((f) => f.endsWith('.narinfo'))
  .map((f) => readFileSync(join(CACHE, f), 'utf8'));

function parsedOrRefused(text: string): NarInfo | undefined {
  try {
    return parseNarInfo(text);
  } catch (e) {
    assert.ok(e instanceof NixFormatError, `not a NixFormatError: ${String(e)}`);
    return undefined;
  }
}

/** What an accepted narinfo must satisfy, whatever the input was. */
function assertValid(info: NarInfo): void {
  parseStorePath(info.storePath);
  parseSha256(info.narHash);
  if (info.fileHash !== undefined) parseSha256(info.fileHash);
  assert.ok(Number.isSafeInteger(info.narSize) && info.narSize >= 0, `NarSize ${info.narSize}`);
  if (info.fileSize !== undefined) assert.ok(Number.isSafeInteger(info.fileSize) && info.fileSize >= 0);
  for (const r of info.references) parseStorePathBaseName(r);
  if (info.deriver !== undefined) parseStorePathBaseName(info.deriver);
  assert.ok(info.url.length > 0);
  assert.deepEqual(parseNarInfo(formatNarInfo(info)), info, 'format → parse is the identity on accepted narinfos');
}

/** A line-level mutation of a real narinfo: drop, duplicate, edit or inject lines. */
const lineEdit = fc.oneof(
  fc.record({ op: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('dup' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('edit' as const), at: fc.nat(), pos: fc.nat(), text: fc.string({ maxLength: 8, unit: 'binary' }) }),
  fc.record({ op: fc.constant('inject' as const), at: fc.nat(), line: fc.string({ maxLength: 80, unit: 'binary' }) }),
);

test('fuzz: mutated real narinfos are refused with NixFormatError or accepted only when valid', () => {
  fc.assert(
    fc.property(fc.constantFrom(...REAL), fc.array(lineEdit, { minLength: 1, maxLength: 4 }), (text, edits) => {
      const lines = text.split('\n');
      for (const e of edits) {
        const at = e.at % lines.length;
        if (e.op === 'drop') lines.splice(at, 1);
        else if (e.op === 'dup') lines.splice(at, 0, lines[at]);
        else if (e.op === 'inject') lines.splice(at, 0, e.line);
        else {
          const l = lines[at] ?? '';
          const pos = e.pos % (l.length + 1);
          lines[at] = l.slice(0, pos) + e.text + l.slice(pos + e.text.length);
        }
        if (lines.length === 0) lines.push('');
      }
      const info = parsedOrRefused(lines.join('\n'));
      if (info) assertValid(info);
    }),
    fuzzParams(2000),
  );
});

test('fuzz: arbitrary text never crashes the narinfo parser', () => {
  const field = fc.constantFrom('StorePath', 'URL', 'Compression', 'FileHash', 'FileSize', 'NarHash', 'NarSize', 'References', 'Deriver', 'Sig', 'CA', 'System', 'X');
  const line = fc.oneof(fc.string({ maxLength: 60, unit: 'binary' }), fc.tuple(field, fc.string({ maxLength: 60, unit: 'binary' })).map(([k, v]) => `${k}: ${v}`));
  fc.assert(
    fc.property(fc.array(line, { maxLength: 12 }), fc.constantFrom('\n', '\r\n'), (lines, eol) => {
      const info = parsedOrRefused(lines.join(eol));
      if (info) assertValid(info);
    }),
    fuzzParams(2000),
  );
});
