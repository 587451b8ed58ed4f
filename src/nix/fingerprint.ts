import { NixFormatError } from './errors.ts';
import { formatSha256Nix32, parseSha256 } from './hash.ts';
import { DEFAULT_STORE_DIR, parseStorePath, parseStorePathBaseName } from './store-path.ts';

/** The string binary-cache signatures are made over (Nix's ValidPathInfo::fingerprint). */
export function narFingerprint(
  storePath: string,
  narHash: string,
  narSize: number,
  references: string[],
  storeDir = DEFAULT_STORE_DIR,
): string {
  const path = parseStorePath(storePath, storeDir).path;
  if (!Number.isSafeInteger(narSize) || narSize <= 0) {
    // Nix refuses too: a fingerprint without the size would not pin the NAR.
    throw new NixFormatError(`cannot fingerprint '${storePath}': NAR size ${narSize} is not a positive integer`);
  }
  const refs = references.map((r) => parseStorePathBaseName(r, storeDir).path);
  refs.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return `1;${path};${formatSha256Nix32(parseSha256(narHash))};${narSize};${refs.join(',')}`;
}
