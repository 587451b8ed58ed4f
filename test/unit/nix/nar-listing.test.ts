import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { NixFormatError } from '../../../src/nix/errors.ts';
import { buildListing, listNar } from '../../../src/nix/nar/listing.ts';
import { DUMPED, FIXTURES } from './fixture-trees.ts';
import { archive, dir, file, symlink } from './nar-builder.ts';

/** [NAR, .ls written by `nix copy --to file://…?write-nar-listing=true`] pairs. */
function nixListings(): [string, Buffer, string][] {
  const pairs: [string, Buffer, string][] = DUMPED.map((name) => [
    name,
    readFileSync(join(FIXTURES, 'dump', `${name}.nar`)),
    readFileSync(join(FIXTURES, 'dump', `${name}.ls`), 'utf8'),
  ]);
  for (const f of readdirSync(join(FIXTURES, 'cache', 'nar'))) {
    const hash = f.replace('.nar', '');
    pairs.push([
      hash,
      readFileSync(join(FIXTURES, 'cache', 'nar', f)),
      readFileSync(join(FIXTURES, 'cache', `${hash}.ls`), 'utf8'),
    ]);
  }
  return pairs;
}

test('listNar matches the .ls files Nix writes', async () => {
  const pairs = nixListings();
  assert.equal(pairs.length, 7);
  for (const [name, nar, ls] of pairs) {
    const listing = await listNar(Readable.from([nar]));
    assert.deepEqual(JSON.parse(JSON.stringify(listing)), JSON.parse(ls), name);
    // Key order and entry order follow Nix too, so even the serialisation is identical.
    assert.equal(JSON.stringify(listing), ls, name);
  }
});

test('listNar accepts async iterables and reports invalid NARs', async () => {
  const nar = archive(dir(['bin', dir(['tool', file('#!', true)])], ['lib', symlink('bin')]));
  async function* source() {
    for (let i = 0; i < nar.length; i += 5) yield nar.subarray(i, i + 5);
  }
  assert.deepEqual(await listNar(source()), {
    version: 1,
    root: {
      type: 'directory',
      entries: {
        bin: { type: 'directory', entries: { tool: { type: 'regular', size: 2, executable: true, narOffset: 400 } } },
        lib: { type: 'symlink', target: 'bin' },
      },
    },
  });
  await assert.rejects(listNar(Readable.from([nar.subarray(0, 50)])), NixFormatError);
  await assert.rejects(listNar(Readable.from([Buffer.concat([nar, Buffer.alloc(8)])])), /trailing data/);
});

test('a file named __proto__ becomes an ordinary entry', async () => {
  const listing = await listNar(Readable.from([archive(dir(['__proto__', file('x')]))]));
  assert.ok(listing.root.type === 'directory');
  assert.ok(Object.hasOwn(listing.root.entries, '__proto__'));
  assert.equal(Object.getPrototypeOf(listing.root.entries), Object.prototype);
  assert.equal(JSON.stringify(listing.root.entries), '{"__proto__":{"type":"regular","size":1,"narOffset":240}}');
});

test('buildListing rejects inconsistent entry sequences', () => {
  const reg = (path: string) => ({ type: 'regular' as const, path, size: 0, executable: false, narOffset: 0 });
  const d = (path: string) => ({ type: 'directory' as const, path });
  assert.throws(() => buildListing([]), /no root entry/);
  assert.throws(() => buildListing([reg(''), reg('')]), /more than one root/);
  assert.throws(() => buildListing([d(''), reg('a/b')]), /no parent directory for 'a\/b'/);
  assert.throws(() => buildListing([reg(''), reg('a')]), /no parent directory for 'a'/);
  assert.throws(() => buildListing([d(''), reg('a'), reg('a')]), /duplicate entry 'a'/);
});
