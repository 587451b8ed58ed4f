import { createHash } from 'node:crypto';
import { decodeNixBase32, encodeNixBase32 } from './base32.ts';
import { decodeBase64Strict } from './base64.ts';
import { NixFormatError } from './errors.ts';

const SHA256_BYTES = 32;
const NIX32_LEN = 52;
const HEX_LEN = 64;
const BASE64_LEN = 44;

/** Decode the digest part by its length, as Nix does for "sha256:" hashes. */
function decodeDigest(digest: string, original: string): Buffer {
  if (digest.length === NIX32_LEN) return decodeNixBase32(digest);
  if (digest.length === HEX_LEN) {
    if (!/^[0-9a-fA-F]+$/.test(digest)) {
      throw new NixFormatError(`invalid sha256 hash '${original}': bad hex digit`);
    }
    return Buffer.from(digest, 'hex');
  }
  if (digest.length === BASE64_LEN) return decodeBase64Strict(digest, `sha256 hash '${original}'`);
  throw new NixFormatError(
    `invalid sha256 hash '${original}': expected 52 nix-base32, 64 hex or 44 base64 characters, got ${digest.length}`,
  );
}

/** Accepts every textual form of a SHA-256 that Nix reads; rejects other algorithms. */
export function parseSha256(s: string): Buffer {
  let digest: Buffer;
  const sep = s.search(/[:-]/);
  if (sep === -1) {
    if (s.length !== NIX32_LEN && s.length !== HEX_LEN) {
      throw new NixFormatError(`invalid sha256 hash '${s}': expected 52 nix-base32 or 64 hex characters`);
    }
    digest = decodeDigest(s, s);
  } else {
    const algo = s.slice(0, sep);
    if (algo !== 'sha256') {
      throw new NixFormatError(`invalid sha256 hash '${s}': unsupported hash algorithm '${algo}'`);
    }
    const rest = s.slice(sep + 1);
    if (s[sep] === '-') {
      if (rest.length !== BASE64_LEN) {
        throw new NixFormatError(`invalid sha256 hash '${s}': SRI digest must be 44 base64 characters`);
      }
      digest = decodeBase64Strict(rest, `sha256 hash '${s}'`);
    } else {
      digest = decodeDigest(rest, s);
    }
  }
  if (digest.length !== SHA256_BYTES) {
    throw new NixFormatError(`invalid sha256 hash '${s}': digest is ${digest.length} bytes, expected 32`);
  }
  return digest;
}

export function formatSha256Nix32(digest: Uint8Array): string {
  if (digest.length !== SHA256_BYTES) {
    throw new NixFormatError(`sha256 digest must be 32 bytes, got ${digest.length}`);
  }
  return `sha256:${encodeNixBase32(digest)}`;
}

export function sha256Nix32Of(bytes: Uint8Array | string): string {
  return formatSha256Nix32(createHash('sha256').update(bytes).digest());
}
