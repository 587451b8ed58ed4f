// The key-change rules of a cache, without a database: which rows a change inserts, retires or
// re-activates, which key becomes the primary, and what is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextKeyName, parseSecretKeys, planKeyChanges } from '../../../src/core/cache-keys.ts';
import { LoftError } from '../../../src/core/errors.ts';
import { SigningKey } from '../../../src/nix/signing.ts';
import type { CacheKeyRow } from '../../../src/db/schema.ts';

const row = (id: number, key: SigningKey, state: 'active' | 'retired' = 'active'): CacheKeyRow => ({
  id,
  cache_id: 1,
  name: key.name,
  secret_key: key.toString(),
  public_key: key.publicKey().toString(),
  state,
  created_at: id,
  retired_at: state === 'retired' ? id : null,
});
const k1 = SigningKey.generate('c-1');
const k2 = SigningKey.generate('c-2');

test('nextKeyName counts up and skips names the cache has', () => {
  assert.equal(nextKeyName('loft-main-1', new Set()), 'loft-main-2');
  assert.equal(nextKeyName('loft-main-1', new Set(['loft-main-2', 'loft-main-3'])), 'loft-main-4');
  assert.equal(nextKeyName('cache.example.com', new Set()), 'cache.example.com-2');
});

test('adding a key inserts it and makes it the primary; the old one stays active', () => {
  const plan = planKeyChanges('c', [row(1, k1)], { add: [k2] });
  assert.deepEqual(plan.insert.map((k) => k.name), ['c-2']);
  assert.deepEqual([plan.retire, plan.activate], [[], []]);
  assert.equal(plan.primary.publicKey, k2.publicKey().toString());
});

test('replacing retires every other key and re-activates a retired one that is named again', () => {
  const plan = planKeyChanges('c', [row(1, k1, 'retired'), row(2, k2)], { replaceWith: [k1] });
  assert.deepEqual([plan.insert, plan.retire, plan.activate], [[], [2], [1]]);
  assert.equal(plan.primary.publicKey, k1.publicKey().toString());
});

test('re-importing the keys already active plans no write', () => {
  const plan = planKeyChanges('c', [row(1, k1), row(2, k2)], { replaceWith: [k1, k2] });
  assert.deepEqual([plan.insert, plan.retire, plan.activate], [[], [], []]);
});

test('refused: a second key under a used name, an unknown name, no active key left', () => {
  const refused = (fn: () => unknown, kind: string, re: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof LoftError && e.kind === kind && re.test(e.message));
  refused(() => planKeyChanges('c', [row(1, k1)], { add: [SigningKey.generate('c-1')] }), 'conflict', /different signing key named 'c-1'.*--key-name c-2/);
  refused(() => planKeyChanges('c', [row(1, k1)], { replaceWith: [k2, SigningKey.generate('c-2')] }), 'conflict', /named 'c-2'/);
  refused(() => planKeyChanges('c', [row(1, k1)], { retire: ['c-9'] }), 'bad_request', /no signing key named 'c-9' \(its keys: c-1\)/);
  refused(() => planKeyChanges('c', [row(1, k1)], { retire: ['c-1'] }), 'conflict', /no active signing key/);
});

test('parseSecretKeys takes whitespace-separated keys and names the source, never the secret, when one is bad', () => {
  assert.deepEqual(parseSecretKeys(`\n${k1}\n  ${k2}\n`, 'f').map((k) => k.name), ['c-1', 'c-2']);
  const secret = k2.toString().split(':')[1]!;
  assert.throws(() => parseSecretKeys(`${k1} c-2:${secret.slice(4)}`, 'file /k'), (e: unknown) => {
    assert.ok(e instanceof LoftError && e.kind === 'bad_request');
    assert.match(e.message, /^file \/k: invalid secret key 'c-2'/);
    assert.ok(!e.message.includes(secret.slice(4)));
    return true;
  });
  assert.throws(() => parseSecretKeys(' \n', 'env X'), /env X: no signing key/);
});
