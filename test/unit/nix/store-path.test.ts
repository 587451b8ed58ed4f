import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NixFormatError } from '../../../src/nix/errors.ts';
import {
  DEFAULT_STORE_DIR,
  isValidStoreDir,
  isValidStorePathHash,
  parseStorePath,
  parseStorePathBaseName,
} from '../../../src/nix/store-path.ts';

const HASH = 'w9yy7v61ipb5rx6i35zq1mvc2iqfmps1';

function rejects(path: string, message: RegExp, storeDir?: string): void {
  assert.throws(() => parseStorePath(path, storeDir), (err: unknown) => {
    assert.ok(err instanceof NixFormatError, path);
    assert.match(err.message, message, path);
    return true;
  });
}

test('parses a store path into its parts', () => {
  assert.deepEqual(parseStorePath(`/nix/store/${HASH}-hello-2.10`), {
    storeDir: DEFAULT_STORE_DIR,
    hash: HASH,
    name: 'hello-2.10',
    baseName: `${HASH}-hello-2.10`,
    path: `/nix/store/${HASH}-hello-2.10`,
  });
  assert.deepEqual(parseStorePathBaseName(`${HASH}-x`, '/opt/store').path, `/opt/store/${HASH}-x`);
  assert.equal(parseStorePath(`/opt/store/${HASH}-x`, '/opt/store').storeDir, '/opt/store');
});

test('accepts every allowed name character and the maximum length', () => {
  const name = 'AZaz09+-._?=';
  assert.equal(parseStorePath(`/nix/store/${HASH}-${name}`).name, name);
  assert.equal(parseStorePath(`/nix/store/${HASH}-${'a'.repeat(211)}`).name.length, 211);
  assert.equal(parseStorePath(`/nix/store/${HASH}-foo.drv`).name, 'foo.drv');
});

test('rejects bad hash parts', () => {
  for (const c of ['e', 'o', 'u', 't', 'A', '_']) {
    rejects(`/nix/store/${c}${HASH.slice(1)}-x`, /invalid store path hash .*must be 32 nix-base32 characters/);
  }
  rejects(`/nix/store/${HASH.slice(1)}-x`, /'-' after the 32-character hash|must be 32/);
  rejects(`/nix/store/${HASH}0-x`, /expected '-' after the 32-character hash/);
  rejects('/nix/store/short', /must be 32 nix-base32 characters/);
  assert.ok(isValidStorePathHash(HASH));
  assert.ok(!isValidStorePathHash(HASH.slice(1)));
  assert.ok(!isValidStorePathHash(HASH + '0'));
  assert.ok(!isValidStorePathHash('e' + HASH.slice(1)));
});

test('rejects bad names', () => {
  rejects(`/nix/store/${HASH}-`, /empty name/);
  rejects(`/nix/store/${HASH}`, /expected '-'/);
  rejects(`/nix/store/${HASH}-${'a'.repeat(212)}`, /longer than 211/);
  rejects(`/nix/store/${HASH}-.hidden`, /must not start with '.'/);
  for (const c of [' ', '!', '@', '~', ':', 'é', '\n', '"', '\\']) {
    rejects(`/nix/store/${HASH}-a${c}b`, /illegal character/);
  }
});

test('rejects wrong store dir, subpaths and trailing slashes', () => {
  rejects(`/nix/stor/${HASH}-x`, /not in store directory '\/nix\/store'/);
  rejects(`/gnu/store/${HASH}-x`, /not in store directory/);
  rejects(`${HASH}-x`, /not in store directory/);
  rejects(`/nix/store/${HASH}-x`, /not in store directory '\/opt\/store'/, '/opt/store');
  rejects(`/nix/store/${HASH}-x/`, /without trailing slash/);
  rejects(`/nix/store/${HASH}-x/bin/sh`, /top-level store entry/);
  rejects(`/nix/store//${HASH}-x`, /top-level store entry/);
});

test('store directories must be canonical absolute paths without control characters', () => {
  for (const ok of ['/nix/store', '/a', '/gnu/store with space', '/x/ü']) assert.ok(isValidStoreDir(ok), ok);
  for (const bad of ['', 'nix/store', '/', '/nix/store/', '/nix//store', '/nix/./store', '/nix/../store', '/nix/store\nWantMassQuery: 0', '/a\rb', '/a\0b', '/a\tb', '/a\x7fb']) {
    assert.ok(!isValidStoreDir(bad), JSON.stringify(bad));
  }
});
