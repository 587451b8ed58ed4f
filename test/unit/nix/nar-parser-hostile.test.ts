import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { listNar } from '../../../src/nix/nar/listing.ts';
import { decodeName, NarParser } from '../../../src/nix/nar/parser.ts';
import type { NarEntry } from '../../../src/nix/nar/types.ts';
import { archive, dir, file } from './nar-builder.ts';

type Part = ReturnType<typeof file>;

/** A chain of `depth` directories, each holding `filesPerLevel` files and the next directory. */
function deepTree(depth: number, filesPerLevel: number): Part {
  let node: Part = dir();
  for (let level = 0; level < depth; level++) {
    const files = Array.from({ length: filesPerLevel }, (_, i) => [`f${i}`, file('x')] as [string, Part]);
    node = dir(['d', node], ...files); // 'd' sorts before 'f…'
  }
  return node;
}

/** One directory with `count` files: about as many tokens as the deep tree, all at depth 1. */
function flatTree(count: number): Part {
  return dir(...Array.from({ length: count }, (_, i) => [`f${String(i).padStart(6, '0')}`, file('x')] as [string, Part]));
}

/** CPU time of one parse (best of a few, to shrug off a loaded machine), plus the entry count. */
function cost(nar: Buffer): { micros: number; entries: number } {
  let best = Infinity;
  let entries = 0;
  for (let run = 0; run < 3; run++) {
    const parser = new NarParser();
    entries = 0;
    parser.on('entry', (_e: NarEntry) => entries++);
    const before = process.cpuUsage();
    for (let pos = 0; pos < nar.length; pos += 4096) parser.write(nar.subarray(pos, pos + 4096));
    parser.end();
    const used = process.cpuUsage(before);
    best = Math.min(best, used.user + used.system);
  }
  return { micros: best, entries };
}

test('parse work does not grow with nesting depth: depth 1000 costs about what a flat NAR of the same size does', () => {
  const deep = archive(deepTree(1000, 2));
  const flat = archive(flatTree(3000));
  // Same token count within a few percent, so the same work is expected of an O(1)-per-token parser.
  assert.ok(Math.abs(deep.length - flat.length) / flat.length < 0.2, `sizes ${deep.length} vs ${flat.length}`);
  cost(flat); // warm up the JIT on both shapes before measuring
  cost(deep);
  const d = cost(deep);
  const f = cost(flat);
  assert.equal(d.entries, 1 + 1000 * 3);
  assert.equal(f.entries, 1 + 3000);
  // A parser with per-token work proportional to depth does ~hundreds of times more here;
  // the generous ratio only absorbs noise.
  assert.ok(d.micros < f.micros * 5 + 20_000, `depth 1000: ${d.micros} µs, flat: ${f.micros} µs`);
});

test('entry names that are not UTF-8 stay distinct and lossless in paths and listings', async () => {
  const names = [Buffer.from('a\u00ff', 'utf8'), Buffer.from([0x61, 0xfe]), Buffer.from([0x61, 0xff])];
  const nar = archive(dir(...names.map((n) => [n, file('x')] as [Buffer, Part])));
  const listing = await listNar(Readable.from([nar]));
  assert.equal(listing.root.type, 'directory');
  const keys = Object.keys(listing.root.type === 'directory' ? listing.root.entries : {});
  assert.deepEqual(keys, ['a\u00ff', 'a\udcfe', 'a\udcff']);
  // JSON keeps the escapes, so the `.ls` document round-trips to the same names.
  assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(listing)).root.entries), keys);
  assert.equal(decodeName(Buffer.from('plain/ascii')), 'plain/ascii');
  assert.equal(decodeName(Buffer.from([0xe2, 0x82])), '\udce2\udc82', 'a truncated sequence escapes byte by byte');
});
