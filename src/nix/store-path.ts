import { createHash } from 'node:crypto';
import { decodeNixBase32, encodeNixBase32, NIX_BASE32_ALPHABET } from './base32.ts';
import { NixFormatError } from './errors.ts';

export const DEFAULT_STORE_DIR = '/nix/store';

export interface StorePath {
  storeDir: string;
  /** 32 nix-base32 characters. */
  hash: string;
  name: string;
  /** "<hash>-<name>" */
  baseName: string;
  /** "<storeDir>/<hash>-<name>" */
  path: string;
}

const HASH_LEN = 32;
const MAX_NAME_LEN = 211;
const HASH_RE = new RegExp(`^[${NIX_BASE32_ALPHABET}]{${HASH_LEN}}$`);
const NAME_RE = /^[A-Za-z0-9+\-._?=]+$/;

/**
 * A store directory as Nix accepts it (canonical absolute path): '/'-separated components, none
 * empty, '.' or '..', no trailing slash, and no control characters, which would inject lines
 * into `nix-cache-info` and narinfos.
 */
export function isValidStoreDir(dir: string): boolean {
  if (dir.length > 4096 || !dir.startsWith('/') || /[\x00-\x1f\x7f]/.test(dir)) return false;
  return dir
    .slice(1)
    .split('/')
    .every((c) => c !== '' && c !== '.' && c !== '..');
}

export function isValidStorePathHash(hash: string): boolean {
  return HASH_RE.test(hash);
}

export function parseStorePathBaseName(baseName: string, storeDir = DEFAULT_STORE_DIR): StorePath {
  const hash = baseName.slice(0, HASH_LEN);
  if (!isValidStorePathHash(hash)) {
    throw new NixFormatError(`invalid store path hash '${hash}' in '${baseName}': must be 32 nix-base32 characters`);
  }
  if (baseName[HASH_LEN] !== '-') {
    throw new NixFormatError(`invalid store path '${baseName}': expected '-' after the 32-character hash`);
  }
  const name = baseName.slice(HASH_LEN + 1);
  if (name.length === 0) {
    throw new NixFormatError(`invalid store path '${baseName}': empty name`);
  }
  if (name.length > MAX_NAME_LEN) {
    throw new NixFormatError(`invalid store path '${baseName}': name longer than ${MAX_NAME_LEN} characters`);
  }
  if (!NAME_RE.test(name)) {
    const bad = [...name].find((c) => !NAME_RE.test(c));
    throw new NixFormatError(`invalid store path '${baseName}': illegal character '${bad}' in name`);
  }
  if (name.startsWith('.')) {
    throw new NixFormatError(`invalid store path '${baseName}': name must not start with '.'`);
  }
  return { storeDir, hash, name, baseName, path: `${storeDir}/${baseName}` };
}

export function parseStorePath(path: string, storeDir = DEFAULT_STORE_DIR): StorePath {
  const prefix = `${storeDir}/`;
  if (!path.startsWith(prefix)) {
    throw new NixFormatError(`invalid store path '${path}': not in store directory '${storeDir}'`);
  }
  const baseName = path.slice(prefix.length);
  if (baseName.includes('/')) {
    throw new NixFormatError(`invalid store path '${path}': must be a top-level store entry without trailing slash`);
  }
  return parseStorePathBaseName(baseName, storeDir);
}

/** A path's `CA` field, parsed: how its contents were hashed (Nix's ContentAddress). */
export interface ContentAddress {
  /** `text`: builtins.toFile and derivations; `flat`/`recursive`: fixed outputs (`fixed:` / `fixed:r:`). */
  method: 'text' | 'flat' | 'recursive';
  algorithm: HashAlgorithm;
  digest: Buffer;
}

type HashAlgorithm = 'md5' | 'sha1' | 'sha256' | 'sha512';
const DIGEST_BYTES: Record<HashAlgorithm, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };
const CA_RE = /^(?:(text):|fixed:(r:)?)(md5|sha1|sha256|sha512):([0-9a-z]+)$/;

/** `text:sha256:<hash>`, `fixed:sha256:<hash>`, `fixed:r:sha256:<hash>` (nix-base32 or hex digests). */
export function parseContentAddress(ca: string): ContentAddress {
  const m = CA_RE.exec(ca);
  if (!m) throw new NixFormatError(`invalid CA field '${ca.slice(0, 200)}': expected text:sha256:…, fixed:<algo>:… or fixed:r:<algo>:…`);
  const algorithm = m[3] as HashAlgorithm;
  if (m[1] && algorithm !== 'sha256') throw new NixFormatError(`invalid CA field '${ca}': text hashes are sha256`);
  const bytes = DIGEST_BYTES[algorithm];
  const text = m[4];
  let digest: Buffer;
  if (text.length === bytes * 2 && /^[0-9a-f]+$/.test(text)) digest = Buffer.from(text, 'hex');
  else if (text.length === Math.ceil((bytes * 8) / 5)) digest = decodeNixBase32(text);
  else throw new NixFormatError(`invalid CA field '${ca}': a ${algorithm} digest is ${bytes} bytes`);
  return { method: m[1] ? 'text' : m[2] ? 'recursive' : 'flat', algorithm, digest };
}

/**
 * The store path a content-addressed path must have, as Nix computes it (makeTextPath,
 * makeFixedOutputPath). `references` are base names; the path's own base name among them is a
 * self-reference, which only recursive sha256 paths may have.
 */
export function contentAddressedPath(ca: ContentAddress, name: string, references: string[], selfBaseName: string, storeDir = DEFAULT_STORE_DIR): string {
  const others = references.filter((r) => r !== selfBaseName);
  const self = others.length !== references.length;
  const typed = (type: string) => [type, ...[...others].sort().map((r) => `${storeDir}/${r}`), ...(self ? ['self'] : [])].join(':');
  const hex = `${ca.algorithm}:${ca.digest.toString('hex')}`;
  if (ca.method === 'text') {
    if (self) throw new NixFormatError('a text-hashed path cannot refer to itself');
    return makeStorePath(typed('text'), hex, name, storeDir);
  }
  if (ca.method === 'recursive' && ca.algorithm === 'sha256') return makeStorePath(typed('source'), hex, name, storeDir);
  if (references.length > 0) throw new NixFormatError(`a fixed-output path hashed with ${ca.method === 'flat' ? 'fixed' : 'fixed:r'}:${ca.algorithm} cannot have references`);
  const inner = createHash('sha256').update(`fixed:out:${ca.method === 'recursive' ? 'r:' : ''}${hex}:`).digest('hex');
  return makeStorePath('output:out', `sha256:${inner}`, name, storeDir);
}

/** Nix's makeStorePath: the first 160 bits (xor-folded) of sha256("<type>:<hash>:<storeDir>:<name>"). */
function makeStorePath(type: string, hashHex: string, name: string, storeDir: string): string {
  const full = createHash('sha256').update(`${type}:${hashHex}:${storeDir}:${name}`).digest();
  const folded = Buffer.alloc(20);
  for (let i = 0; i < full.length; i++) folded[i % 20] ^= full[i];
  return `${storeDir}/${encodeNixBase32(folded)}-${name}`;
}
