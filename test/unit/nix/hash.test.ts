import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { NixFormatError } from '../../../src/nix/errors.ts';
import { formatSha256Nix32, parseSha256, sha256Nix32Of } from '../../../src/nix/hash.ts';

const FOX = 'The quick brown fox jumps over the lazy dog';
const DIGEST = createHash('sha256').update(FOX).digest();
// `nix hash file` of the same bytes, in each encoding.
const NIX32 = '14p5r4vvzl025mvdng3dwi8md3ag5q4b1g4sr9lr906p0yrzpa6p';
const HEX = 'd7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592';
const SRI = 'sha256-16j7swfXgJRpypq8sAguT41WUeRtPNt2LQLQvzfJ5ZI=';

test('parses every accepted form to the same digest', () => {
  for (const form of [`sha256:${NIX32}`, `sha256:${HEX}`, SRI, NIX32, HEX, HEX.toUpperCase(), `sha256:${DIGEST.toString('base64')}`]) {
    assert.deepEqual(parseSha256(form), DIGEST, form);
  }
});

test('formats as sha256:<nix32>', () => {
  assert.equal(formatSha256Nix32(DIGEST), `sha256:${NIX32}`);
  assert.equal(sha256Nix32Of(FOX), `sha256:${NIX32}`);
  assert.equal(sha256Nix32Of(''), 'sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73');
  assert.throws(() => formatSha256Nix32(new Uint8Array(20)), NixFormatError);
});

test('rejects other algorithms, wrong lengths and bad characters', () => {
  const cases: [string, RegExp][] = [
    [`sha512:${NIX32}`, /unsupported hash algorithm 'sha512'/],
    [`md5:${HEX}`, /unsupported hash algorithm 'md5'/],
    ['sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA=', /unsupported hash algorithm 'sha1'/],
    [`sha256:${NIX32.slice(1)}`, /got 51/],
    [NIX32 + '0', /expected 52 nix-base32 or 64 hex/],
    [`sha256:${HEX.slice(0, 63)}g`, /bad hex digit/],
    [`sha256:e${NIX32.slice(1)}`, /illegal character 'e'/],
    ['sha256-16j7swfXgJRpypq8sAguT41WUeRtPNt2LQLQvzfJ5Z', /44 base64/],
    ['sha256-16j7swfXgJRpypq8sAguT41WUeRtPNt2LQLQvzfJ5Z!=', /not valid base64/],
    ['', /expected 52 nix-base32 or 64 hex/],
  ];
  for (const [input, message] of cases) {
    assert.throws(() => parseSha256(input), (err: unknown) => {
      assert.ok(err instanceof NixFormatError, input);
      assert.match(err.message, message, input);
      return true;
    });
  }
});
