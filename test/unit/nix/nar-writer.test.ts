import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { dumpPath } from '../../../src/nix/nar/writer.ts';
import { DUMPED, FIXTURES, makeTrees } from './fixture-trees.ts';

let root: string;
before(async () => {
  root = await makeTrees();
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function collect(path: string): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of dumpPath(path)) chunks.push(chunk as Buffer);
  return chunks;
}

test('dumpPath is byte-identical to `nix-store --dump`', async () => {
  // tree: nested dirs, empty file, empty dir, executables (0755, 0744), group-only x (not executable),
  // absolute and relative symlinks, sizes not a multiple of 8, names needing byte-order sorting.
  for (const name of DUMPED) {
    const expected = readFileSync(join(FIXTURES, 'dump', `${name}.nar`));
    assert.deepEqual(Buffer.concat(await collect(join(root, name))), expected, name);
  }
});

test('dumpPath streams a 5 MB file in bounded chunks with the same hash as Nix', async () => {
  const hash = createHash('sha256');
  let total = 0;
  let largest = 0;
  for (const chunk of await collect(join(root, 'big.bin'))) {
    hash.update(chunk);
    total += chunk.length;
    largest = Math.max(largest, chunk.length);
  }
  assert.equal(total, 5243000); // `nix-store --dump big.bin | wc -c`
  assert.equal(hash.digest('hex'), readFileSync(join(FIXTURES, 'dump', 'big.bin.nar.sha256'), 'utf8').trim());
  assert.ok(largest <= 64 * 1024, `largest chunk ${largest} bytes`);
});

test('dumpPath reports a missing path as a stream error', async () => {
  await assert.rejects(collect(join(root, 'does-not-exist')), { code: 'ENOENT' });
});
