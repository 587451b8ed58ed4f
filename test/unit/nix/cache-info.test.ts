import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatCacheInfo, parseCacheInfo } from '../../../src/nix/cache-info.ts';
import { NixFormatError } from '../../../src/nix/errors.ts';
import { FIXTURES } from './fixture-trees.ts';

test('formats the three fields Nix reads', () => {
  assert.equal(
    formatCacheInfo({ storeDir: '/nix/store', wantMassQuery: true, priority: 40 }),
    'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n',
  );
  assert.equal(
    formatCacheInfo({ storeDir: '/nix/store', wantMassQuery: false, priority: 0 }),
    'StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 0\n',
  );
  assert.throws(() => formatCacheInfo({ storeDir: '/nix/store', wantMassQuery: true, priority: -1 }), NixFormatError);
});

test('parses what it formats and what Nix writes', () => {
  const text = formatCacheInfo({ storeDir: '/nix/store', wantMassQuery: true, priority: 41 });
  assert.deepEqual(parseCacheInfo(text), { storeDir: '/nix/store', wantMassQuery: true, priority: 41 });
  // `nix copy --to file://` writes only StoreDir.
  assert.deepEqual(parseCacheInfo(readFileSync(join(FIXTURES, 'cache', 'nix-cache-info'), 'utf8')), {
    storeDir: '/nix/store',
  });
  assert.deepEqual(parseCacheInfo('StoreDir: /x\nOther: y\nWantMassQuery: 0\n'), { storeDir: '/x', wantMassQuery: false });
});

test('rejects malformed input', () => {
  assert.throws(() => parseCacheInfo('WantMassQuery: 1\n'), /missing StoreDir/);
  assert.throws(() => parseCacheInfo('StoreDir: nix/store\n'), /not absolute/);
  assert.throws(() => parseCacheInfo('StoreDir: /nix/store\nWantMassQuery: yes\n'), /expected 0 or 1/);
  assert.throws(() => parseCacheInfo('StoreDir: /nix/store\nPriority: high\n'), /Priority 'high'/);
  assert.throws(() => parseCacheInfo('garbage\n'), NixFormatError);
});
