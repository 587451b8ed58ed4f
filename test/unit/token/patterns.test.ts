import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TokenError } from '../../../src/token/errors.ts';
import {
  assertValidCachePattern,
  compareSpecificity,
  isValidCacheName,
  isValidCachePattern,
  matchesPattern,
  specificity,
} from '../../../src/token/patterns.ts';

describe('cache names', () => {
  it('accepts Attic-style names plus dots, up to 50 chars', () => {
    for (const name of ['a', 'main', 'alice+ci', 'my.cache', 'A_b-c', '0x', 'a'.repeat(50)]) {
      assert.ok(isValidCacheName(name), name);
    }
  });

  it('rejects empty, leading punctuation, over 50 chars, other characters and wildcards', () => {
    for (const name of ['', '-a', '.a', '_a', '+a', 'a'.repeat(51), 'a b', 'a/b', 'ä', 'a*', '..', 42]) {
      assert.ok(!isValidCacheName(name), String(name));
    }
  });
});

describe('cache patterns', () => {
  it('accepts names and names with * anywhere', () => {
    for (const p of ['*', 'team-*', '*-ci', 'a*b', '**', 'main', 'alice+*']) assert.ok(isValidCachePattern(p), p);
  });

  it('rejects invalid patterns with a TokenError', () => {
    for (const p of ['', 'a b', '-*', '?', 'a?', `${'a'.repeat(50)}*`]) {
      assert.ok(!isValidCachePattern(p), p);
      assert.throws(() => assertValidCachePattern(p), (e: unknown) => e instanceof TokenError && /^invalid cache pattern/.test(e.message));
    }
  });

  it('matches * against any run of characters, including none', () => {
    const cases: Array<[string, string, boolean]> = [
      ['*', 'anything', true],
      ['team-*', 'team-a', true],
      ['team-*', 'team-', true],
      ['team-*', 'teamx', false],
      ['*-ci', 'foo-ci', true],
      ['*-ci', 'foo-cix', false],
      ['a*b', 'ab', true],
      ['a*b', 'axxb', true],
      ['a*b', 'axxbc', false],
      ['a*b*c', 'abbbc', true],
      ['main', 'main', true],
      ['main', 'Main', false],
      ['a.b', 'axb', false],
    ];
    for (const [pattern, name, expected] of cases) assert.equal(matchesPattern(pattern, name), expected, `${pattern} ~ ${name}`);
  });

  it('stays fast on pathological patterns', () => {
    // A backtracking matcher needs ~C(200, 20) ≈ 1.6e27 steps here; a linear one microseconds. The
    // bound is that far from both that a loaded machine cannot make it flake.
    const started = performance.now();
    assert.equal(matchesPattern(`${'*a'.repeat(20)}*b`, 'a'.repeat(200)), false);
    assert.equal(matchesPattern(`${'*a'.repeat(20)}*`, 'a'.repeat(200)), true);
    assert.ok(performance.now() - started < 10_000);
  });

  it('ranks by literal characters, then by pattern string', () => {
    assert.equal(specificity('*'), 0);
    assert.equal(specificity('**'), 0);
    assert.equal(specificity('team-*'), 5);
    assert.equal(specificity('a*b'), 2);
    assert.deepEqual(['*', 'a*', 'team-*', '*b', 'ab*c'].sort(compareSpecificity), ['team-*', 'ab*c', '*b', 'a*', '*']);
  });
});
