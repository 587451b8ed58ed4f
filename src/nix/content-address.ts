import { parseSha256 } from './hash.ts';
import type { PathInfo } from './narinfo.ts';
import { contentAddressedPath, DEFAULT_STORE_DIR, parseContentAddress, parseStorePath } from './store-path.ts';

/**
 * True when the narinfo's CA field proves its store path without a signature, as Nix accepts
 * it: a `fixed:r:sha256:` path (a NAR-hashed fixed output, e.g. a source) whose path is the one
 * Nix's makeFixedOutputPath gives for that hash, name and references, and whose NarHash is that
 * hash — so verifying the NAR against NarHash verifies the content. Flat-file and text CAs are
 * not taken as proof here (their hash is over a file inside the NAR): they need a signature.
 */
export function caProvesStorePath(info: PathInfo, storeDir = DEFAULT_STORE_DIR): boolean {
  try {
    const ca = parseContentAddress(info.ca ?? '');
    if (ca.method !== 'recursive' || ca.algorithm !== 'sha256') return false;
    if (!parseSha256(info.narHash).equals(ca.digest)) return false;
    const sp = parseStorePath(info.storePath, storeDir);
    return contentAddressedPath(ca, sp.name, info.references, sp.baseName, storeDir) === sp.path;
  } catch {
    return false;
  }
}
