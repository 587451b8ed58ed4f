// Property-based fuzzing of the NAR parser: any input is either a NixFormatError or a NAR that
// re-serialises to exactly the input (NARs are canonical, so accepting anything else would accept
// an invalid NAR); generated valid NARs are always accepted with the right entries.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { NixFormatError } from '../../src/nix/errors.ts';
import { NarParser } from '../../src/nix/nar/parser.ts';
import type { NarEntry } from '../../src/nix/nar/types.ts';
import { archive, dir, file, symlink } from '../unit/nix/nar-builder.ts';
import { fuzzParams } from './runs.ts';

type Part = ReturnType<typeof file>;
type Tree = { kind: 'file'; contents: Buffer; executable: boolean } | { kind: 'link'; target: Buffer } | { kind: 'dir'; entries: [Buffer, Tree][] };

/** Parses in pieces of the given sizes; entries or the error, once the parser has settled. */
async function settle(nar: Buffer, pieceSizes: number[] = [nar.length]): Promise<{ entries: NarEntry[] } | { error: unknown }> {
  const parser = new NarParser();
  const entries: NarEntry[] = [];
  let error: unknown;
  parser.on('entry', (e: NarEntry) => entries.push(e));
  parser.on('error', (e) => (error ??= e));
  let pos = 0;
  for (let i = 0; pos < nar.length && error === undefined; i++) {
    const n = Math.max(1, pieceSizes[i % pieceSizes.length] ?? nar.length);
    parser.write(nar.subarray(pos, pos + n));
    pos += n;
  }
  if (error === undefined) {
    parser.end();
    await new Promise<void>((resolve) => {
      parser.once('finish', resolve);
      parser.once('error', () => resolve());
    });
  }
  return error === undefined ? { entries } : { error };
}

const filePart = (contents: Buffer, executable: boolean): Part => ['(', 'type', 'regular', ...(executable ? ['executable', ''] : []), 'contents', contents, ')'];

/** Rebuilds the NAR from what the parser reported (contents read back at their narOffset). */
function rebuild(entries: NarEntry[], nar: Buffer): Buffer {
  let i = 0;
  const node = (): Part => {
    const e = entries[i++];
    if (e.type === 'regular') return filePart(nar.subarray(e.narOffset, e.narOffset + e.size), e.executable);
    if (e.type === 'symlink') return symlink(encodeName(e.target));
    const children: [Buffer, Part][] = [];
    while (i < entries.length && isChild(entries[i].path, e.path)) {
      const name = entries[i].path.slice(e.path === '' ? 0 : e.path.length + 1);
      children.push([encodeName(name), node()]);
    }
    return dir(...children);
  };
  return archive(node());
}

const isChild = (path: string, parent: string) => (parent === '' ? path !== '' && !path.includes('/') : path.startsWith(`${parent}/`) && !path.slice(parent.length + 1).includes('/'));

/** Inverse of the parser's lossless name decoding (lone surrogates U+DC80..U+DCFF are raw bytes). */
function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const ch of name) {
    const c = ch.charCodeAt(0);
    parts.push(ch.length === 1 && c >= 0xdc80 && c <= 0xdcff ? Buffer.from([c & 0xff]) : Buffer.from(ch, 'utf8'));
  }
  return Buffer.concat(parts);
}

const nameArb = fc
  .uint8Array({ minLength: 1, maxLength: 12 })
  .map((b) => Buffer.from(b.map((x) => (x === 0 || x === 0x2f ? 0x61 : x))))
  .filter((b) => b.toString('latin1') !== '.' && b.toString('latin1') !== '..');

const treeArb: fc.Arbitrary<Tree> = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ kind: fc.constant('file' as const), contents: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)), executable: fc.boolean() }),
    fc.record({ kind: fc.constant('link' as const), target: fc.uint8Array({ minLength: 1, maxLength: 20 }).map((b) => Buffer.from(b.map((x) => x || 1))) }),
    fc.record({
      kind: fc.constant('dir' as const),
      entries: fc
        .uniqueArray(fc.tuple(nameArb, tie('tree')), { maxLength: 4, selector: ([n]) => n.toString('hex') })
        .map((es) => es.sort(([a], [b]) => Buffer.compare(a, b))),
    }),
  ),
})).tree;

function toParts(t: Tree): Part {
  if (t.kind === 'file') return filePart(t.contents, t.executable);
  if (t.kind === 'link') return symlink(t.target);
  return dir(...t.entries.map(([n, c]) => [n, toParts(c)] as [Buffer, Part]));
}

const countNodes = (t: Tree): number => (t.kind === 'dir' ? 1 + t.entries.reduce((s, [, c]) => s + countNodes(c), 0) : 1);

test('fuzz: every generated valid NAR is accepted, in any piece sizes, with one entry per node', async () => {
  await fc.assert(
    fc.asyncProperty(treeArb, fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }), async (tree, pieces) => {
      const nar = archive(toParts(tree));
      const r = await settle(nar, pieces);
      assert.ok('entries' in r, `valid NAR refused: ${'error' in r ? String(r.error) : ''}`);
      assert.equal(r.entries.length, countNodes(tree));
    }),
    fuzzParams(300),
  );
});

test('fuzz: a mutated NAR is refused with NixFormatError or is exactly the NAR its entries describe', async () => {
  const mutation = fc.oneof(
    fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
    fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  );
  await fc.assert(
    fc.asyncProperty(treeArb, fc.array(mutation, { minLength: 1, maxLength: 3 }), async (tree, mutations) => {
      let nar = archive(toParts(tree));
      for (const m of mutations) {
        const at = m.at % (nar.length + 1);
        if (m.op === 'flip' && at < nar.length) nar = Buffer.from(nar), (nar[at] ^= 1 << m.bit);
        else if (m.op === 'set' && at < nar.length) nar = Buffer.from(nar), (nar[at] = m.value);
        else if (m.op === 'cut') nar = nar.subarray(0, at);
        else if (m.op === 'insert') nar = Buffer.concat([nar.subarray(0, at), Buffer.from(m.bytes), nar.subarray(at)]);
      }
      const r = await settle(nar);
      if ('error' in r) {
        assert.ok(r.error instanceof NixFormatError, `not a NixFormatError: ${String(r.error)}`);
        return;
      }
      assert.ok(rebuild(r.entries, nar).equals(nar), 'accepted a NAR that is not the canonical form of what it contains');
    }),
    fuzzParams(500),
  );
});

test('fuzz: random bytes (with and without the magic) never crash the parser', async () => {
  const magic = archive(['(']).subarray(0, 24);
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.uint8Array({ maxLength: 512 }), async (withMagic, bytes) => {
      const input = withMagic ? Buffer.concat([magic, Buffer.from(bytes)]) : Buffer.from(bytes);
      const r = await settle(input);
      if ('error' in r) assert.ok(r.error instanceof NixFormatError, String(r.error));
      else assert.ok(rebuild(r.entries, input).equals(input));
    }),
    fuzzParams(500),
  );
});
