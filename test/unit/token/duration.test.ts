import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration } from '../../../src/token/duration.ts';

describe('parseDuration', () => {
  it('parses single units', () => {
    assert.equal(parseDuration('45s'), 45);
    assert.equal(parseDuration('30m'), 1800);
    assert.equal(parseDuration('12h'), 43200);
    assert.equal(parseDuration('90d'), 90 * 86400);
    assert.equal(parseDuration('2w'), 14 * 86400);
    assert.equal(parseDuration('1y'), 365 * 86400);
  });

  it('parses combinations, largest unit first', () => {
    assert.equal(parseDuration('1d12h'), 86400 + 12 * 3600);
    assert.equal(parseDuration('1y2w3d4h5m6s'), 365 * 86400 + 14 * 86400 + 3 * 86400 + 4 * 3600 + 5 * 60 + 6);
  });

  it('rejects everything else with a clear message', () => {
    for (const bad of ['', '90', 'd', '1.5h', '-1d', '1h1d', '5m5m', '1 d', '1D', ' 1d', '1d ', 'forever', '0s', '99999999999999999999y']) {
      assert.throws(() => parseDuration(bad), /^RangeError: invalid duration/, bad);
    }
  });
});
