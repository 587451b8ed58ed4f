import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { NIX_BASE32_ALPHABET, decodeNixBase32, encodeNixBase32 } from '../../../src/nix/base32.ts';
import { NixFormatError } from '../../../src/nix/errors.ts';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

// Vectors from `nix hash file --type sha256 --base32` and `nix-hash --to-base32` (Nix 2.8).
const VECTORS: [Buffer, string][] = [
  [sha256(''), '0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73'],
  [sha256('The quick brown fox jumps over the lazy dog'), '14p5r4vvzl025mvdng3dwi8md3ag5q4b1g4sr9lr906p0yrzpa6p'],
  [Buffer.alloc(32, 0xff), '1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz'],
  [Buffer.from('00'.repeat(31) + '01', 'hex'), '0080000000000000000000000000000000000000000000000000'],
  [Buffer.from('0123456789abcdef0123456789abcdef01234567', 'hex'), 'cx2j60ggrnmqjrs54c0yzkdbi5kla8q1'],
  [Buffer.from('0123456789abcdef0123456789abcdef', 'hex'), '7grnmqjrs54c0yzkdbi5kla8q1'],
];

test('alphabet leaves out e, o, u and t', () => {
  assert.equal(NIX_BASE32_ALPHABET, '0123456789abcdfghijklmnpqrsvwxyz');
  for (const c of 'eout') assert.ok(!NIX_BASE32_ALPHABET.includes(c));
});

test('encodes and decodes the Nix-produced vectors', () => {
  for (const [bytes, text] of VECTORS) {
    assert.equal(encodeNixBase32(bytes), text);
    assert.deepEqual(decodeNixBase32(text), bytes);
  }
});

test('sha256 encodes to 52 characters, store path hashes (20 bytes) to 32', () => {
  assert.equal(encodeNixBase32(randomBytes(32)).length, 52);
  assert.equal(encodeNixBase32(randomBytes(20)).length, 32);
  assert.equal(encodeNixBase32(new Uint8Array(0)), '');
});

test('round-trips random data of every length 0..64', () => {
  for (let len = 0; len <= 64; len++) {
    const bytes = randomBytes(len);
    assert.deepEqual(decodeNixBase32(encodeNixBase32(bytes)), bytes, `length ${len}`);
  }
});

test('rejects illegal characters', () => {
  for (const bad of ['e', 'o', 'u', 't', 'A', '-', ' ']) {
    const s = bad + '0'.repeat(51);
    assert.throws(() => decodeNixBase32(s), (err: unknown) => {
      assert.ok(err instanceof NixFormatError);
      assert.match(err.message, new RegExp(`illegal character '${bad}'`));
      return true;
    });
  }
});

test('rejects impossible lengths and non-zero padding bits', () => {
  assert.throws(() => decodeNixBase32('0'.repeat(51)), /not a valid encoded length/);
  // 53 characters is a valid length (33 bytes), 54 is not.
  assert.throws(() => decodeNixBase32('0'.repeat(54)), /not a valid encoded length/);
  // 52 chars carry 260 bits for 256: the top 4 bits of the first char must be zero.
  assert.throws(() => decodeNixBase32('2' + '0'.repeat(51)), /non-zero padding bits/);
});
