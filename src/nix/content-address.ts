import { createHash } from 'node:crypto';
import { encodeNixBase32 } from './base32.ts';
import { parseSha256 } from './hash.ts';
import type { PathInfo } from './narinfo.ts';
import { DEFAULT_STORE_DIR, parseStorePath, parseStorePathBaseName } from './store-path.ts';

/**
 * True when the narinfo's CA field proves its store path without a signature, as Nix accepts
 * it: a `fixed:r:sha256:` path (a NAR-hashed fixed output, e.g. a source) whose path is the one
 * Nix's makeFixedOutputPath gives for that hash, name and references, and whose NarHash is that
 * hash — so verifying the NAR against NarHash verifies the content. Flat-file and text CAs are
 * not taken as proof here (their hash is over a file inside the NAR): they need a signature.
 */
export function caProvesStorePath(info: PathInfo, storeDir = DEFAULT_STORE_DIR): boolean {
  const m = /^fixed:r:(sha256:\S+)$/.exec(info.ca ?? '');
  if (!m) return false;
  let contentHash: Buffer;
  try {
    contentHash = parseSha256(m[1]);
    if (!parseSha256(info.narHash).equals(contentHash)) return false;
    const sp = parseStorePath(info.storePath, storeDir);
    const refs = info.references.map((r) => parseStorePathBaseName(r, storeDir).path).filter((p) => p !== sp.path).sort();
    const selfRef = info.references.some((r) => parseStorePathBaseName(r, storeDir).path === sp.path);
    const type = ['source', ...refs, ...(selfRef ? ['self'] : [])].join(':');
    return makeStorePathHash(type, contentHash, sp.name, storeDir) === sp.hash;
  } catch {
    return false;
  }
}

/** Nix's makeStorePath: the first 160 bits (xor-folded) of a SHA-256 over the path's description. */
function makeStorePathHash(type: string, hash: Buffer, name: string, storeDir: string): string {
  const digest = createHash('sha256').update(`${type}:sha256:${hash.toString('hex')}:${storeDir}:${name}`).digest();
  const folded = Buffer.alloc(20);
  for (let i = 0; i < digest.length; i++) folded[i % 20] ^= digest[i];
  return encodeNixBase32(folded);
}
