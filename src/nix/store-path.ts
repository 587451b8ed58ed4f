import { NIX_BASE32_ALPHABET } from './base32.ts';
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
