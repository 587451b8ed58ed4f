import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TokenError } from '../../../src/token/errors.ts';
import { extractToken } from '../../../src/token/header.ts';

const basic = (credentials: string) => `Basic ${Buffer.from(credentials).toString('base64')}`;

describe('extractToken', () => {
  it('returns undefined when there is no header', () => {
    assert.equal(extractToken(undefined), undefined);
  });

  it('reads Bearer tokens, scheme case-insensitive', () => {
    assert.equal(extractToken('Bearer aaa.bbb.ccc'), 'aaa.bbb.ccc');
    assert.equal(extractToken('bearer aaa.bbb.ccc'), 'aaa.bbb.ccc');
    assert.equal(extractToken('BEARER  aaa.bbb.ccc '), 'aaa.bbb.ccc');
  });

  it('reads the password of Basic credentials as the token (Nix netrc), ignoring the user', () => {
    assert.equal(extractToken(basic('alice:aaa.bbb.ccc')), 'aaa.bbb.ccc');
    assert.equal(extractToken(basic(':aaa.bbb.ccc')), 'aaa.bbb.ccc');
    assert.equal(extractToken(basic('u:a:b')), 'a:b');
    assert.equal(extractToken(`basic ${Buffer.from('u:tok').toString('base64')}`), 'tok');
    assert.equal(extractToken(`Basic ${Buffer.from('u:tok').toString('base64').replace(/=+$/, '')}`), 'tok');
  });

  it('throws TokenError for malformed headers', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /^malformed Authorization header/],
      ['Bearer', /^malformed Authorization header/],
      ['Bearer a b', /^malformed Authorization header/],
      ['aaa.bbb.ccc', /^malformed Authorization header/],
      ['Digest abc', /^unsupported Authorization scheme 'Digest'/],
      ['Basic !!!!', /^malformed Basic credentials: not valid base64/],
      ['Basic Zm9v===', /^malformed Basic credentials: not valid base64/],
      [basic('no-colon'), /^malformed Basic credentials: expected 'user:password'/],
      [basic('alice:'), /^malformed Basic credentials: the password \(token\) is empty/],
    ];
    for (const [header, message] of cases) {
      assert.throws(() => extractToken(header), (e: unknown) => e instanceof TokenError && message.test(e.message), header);
    }
  });
});
