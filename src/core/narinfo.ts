import type { Kysely } from 'kysely';
import { formatNarInfo } from '../nix/narinfo.ts';
import { narFingerprint } from '../nix/fingerprint.ts';
import { SigningKey } from '../nix/signing.ts';
import type { CacheRow, Database } from '../db/schema.ts';
import { setServerSignature, type ObjectWithNar } from '../db/repos/objects.ts';

const keys = new Map<string, SigningKey>();

/** Parsing a key costs more than signing with it; keep one KeyObject per secret. */
export function signingKeyOf(cache: CacheRow): SigningKey {
  let key = keys.get(cache.signing_key);
  if (!key) {
    key = SigningKey.parse(cache.signing_key);
    keys.set(cache.signing_key, key);
  }
  return key;
}

export function narUrl(fileHash: string): string {
  return `nar/${fileHash.slice('sha256:'.length)}.nar.zst`;
}

/**
 * The narinfo of a path as served. The cache's signature is made once and
 * kept; it is remade only when the cache's key has changed since.
 */
export async function renderNarInfo(db: Kysely<Database>, cache: CacheRow, obj: ObjectWithNar): Promise<string> {
  const refs = JSON.parse(obj.references) as string[];
  let sig = obj.server_sig;
  if (!sig || obj.server_sig_key !== cache.public_key) {
    sig = signingKeyOf(cache).sign(narFingerprint(obj.store_path, obj.nar.nar_hash, obj.nar.nar_size, refs, cache.store_dir));
    await setServerSignature(db, obj.id, sig, cache.public_key);
  }
  return formatNarInfo({
    storePath: obj.store_path,
    url: narUrl(obj.nar.file_hash),
    compression: 'zstd',
    fileHash: obj.nar.file_hash,
    fileSize: obj.nar.file_size,
    narHash: obj.nar.nar_hash,
    narSize: obj.nar.nar_size,
    references: refs,
    deriver: obj.deriver ?? undefined,
    sigs: [sig, ...(JSON.parse(obj.client_sigs) as string[])],
    ca: obj.ca ?? undefined,
  });
}
