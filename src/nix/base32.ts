import { NixFormatError } from './errors.ts';

// Nix drops e, o, u and t to avoid accidental words in hashes.
export const NIX_BASE32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

const DIGIT = new Map<string, number>([...NIX_BASE32_ALPHABET].map((c, i) => [c, i]));

/** Encoded length for `n` bytes: 5 bits per character, rounded up. */
function encodedLength(n: number): number {
  return Math.ceil((n * 8) / 5);
}

/** Nix's base32 reads the bytes from the end, so the first character holds the most significant bits. */
export function encodeNixBase32(bytes: Uint8Array): string {
  const len = encodedLength(bytes.length);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const c = (bytes[i] >> j) | (i + 1 < bytes.length ? bytes[i + 1] << (8 - j) : 0);
    out += NIX_BASE32_ALPHABET[c & 0x1f];
  }
  return out;
}

export function decodeNixBase32(s: string): Buffer {
  const size = Math.floor((s.length * 5) / 8);
  if (encodedLength(size) !== s.length) {
    throw new NixFormatError(`invalid nix-base32 string '${s}': length ${s.length} is not a valid encoded length`);
  }
  const out = Buffer.alloc(size);
  for (let n = 0; n < s.length; n++) {
    const ch = s[s.length - n - 1];
    const digit = DIGIT.get(ch);
    if (digit === undefined) {
      throw new NixFormatError(`invalid nix-base32 string '${s}': illegal character '${ch}'`);
    }
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] |= digit << j;
    const carry = digit >> (8 - j);
    if (i + 1 < size) {
      out[i + 1] |= carry;
    } else if (carry !== 0) {
      // Bits beyond the last byte must be zero, otherwise two strings would decode to the same bytes.
      throw new NixFormatError(`invalid nix-base32 string '${s}': non-zero padding bits`);
    }
  }
  return out;
}
