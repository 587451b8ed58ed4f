import { NixFormatError } from './errors.ts';

/** Strict base64 decode: Buffer.from() silently skips garbage, which would let malformed keys and signatures through. */
export function decodeBase64Strict(s: string, what: string): Buffer {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
    throw new NixFormatError(`invalid ${what}: not valid base64`);
  }
  const bytes = Buffer.from(s, 'base64');
  if (bytes.toString('base64') !== s) {
    throw new NixFormatError(`invalid ${what}: non-canonical base64`);
  }
  return bytes;
}
