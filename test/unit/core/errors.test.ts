import { test } from 'node:test';
import assert from 'node:assert/strict';
import { badRequest, LoftError, notFound } from '../../../src/core/errors.ts';

test('an expected 404 (a narinfo miss) is built without capturing a stack; other errors keep theirs', () => {
  const miss = notFound('abc.narinfo: no such path');
  assert.ok(miss instanceof LoftError);
  assert.equal(miss.kind, 'not_found');
  assert.equal(miss.message, 'abc.narinfo: no such path');
  assert.doesNotMatch(miss.stack ?? '', /\n\s+at /, 'no stack frames');
  assert.match(badRequest('x').stack ?? '', /\n\s+at /);
  assert.match(new Error('after').stack ?? '', /\n\s+at /, 'the stack trace limit is restored');
});
