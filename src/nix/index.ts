export { NixFormatError } from './errors.ts';
export { NIX_BASE32_ALPHABET, decodeNixBase32, encodeNixBase32 } from './base32.ts';
export { formatSha256Nix32, parseSha256, sha256Nix32Of } from './hash.ts';
export {
  DEFAULT_STORE_DIR,
  isValidStorePathHash,
  parseStorePath,
  parseStorePathBaseName,
  type StorePath,
} from './store-path.ts';
export { formatNarInfo, parseNarInfo, type NarInfo } from './narinfo.ts';
export { narFingerprint } from './fingerprint.ts';
export { PublicKey, SigningKey, verifyNarInfoSignature } from './signing.ts';
export { formatCacheInfo, parseCacheInfo, type CacheInfo } from './cache-info.ts';
export type { NarEntry } from './nar/types.ts';
export { NarParser } from './nar/parser.ts';
export { buildListing, listNar, type ListingNode, type NarListing } from './nar/listing.ts';
export { dumpPath } from './nar/writer.ts';
