import type { Kysely } from 'kysely';
import { formatNarInfo } from '../nix/narinfo.ts';
import { narFingerprint } from '../nix/fingerprint.ts';
import { SigningKey } from '../nix/signing.ts';
import type { Database } from '../db/schema.ts';
import { setServerSignatures, type ObjectWithNar } from '../db/repos/objects.ts';
import { activeKeys } from './cache-keys.ts';
import type { Cache } from './caches.ts';

const keys = new Map<string, SigningKey>();

/** Parsing a key costs more than signing with it; keep one KeyObject per secret. */
function signingKey(secret: string): SigningKey {
  let key = keys.get(secret);
  if (!key) {
    key = SigningKey.parse(secret);
    keys.set(secret, key);
  }
  return key;
}

/** Signatures of a fingerprint by every active key of the cache. */
export function signWithActiveKeys(cache: Cache, fingerprint: string): string[] {
  return activeKeys(cache.keys).map((k) => signingKey(k.secret_key).sign(fingerprint));
}

/** Pushed or upstream signatures, without any under the cache's own key names (those are ours alone). */
export function foreignSignatures(cache: Cache, sigs: string[]): string[] {
  const own = new Set(cache.keys.map((k) => k.name));
  return sigs.filter((s) => !own.has(s.slice(0, s.indexOf(':'))));
}

export function narUrl(fileHash: string): string {
  return `nar/${fileHash.slice('sha256:'.length)}.nar.zst`;
}

/** The path's stored signatures by the public key that made them (schema.ts: one per line). */
function storedSignatures(obj: ObjectWithNar): Map<string, string> {
  if (!obj.server_sig || !obj.server_sig_key) return new Map();
  const sigs = obj.server_sig.split('\n');
  return new Map(obj.server_sig_key.split('\n').map((pub, i) => [pub, sigs[i]!]));
}

/**
 * The narinfo of a path as served, signed by every active key of the cache (during a rotation
 * clients trusting either key accept it). A signature is made once per path and key and kept;
 * only a key added since is signed with, and a retired key's signature is dropped.
 */
export async function renderNarInfo(db: Kysely<Database>, cache: Cache, obj: ObjectWithNar): Promise<string> {
  const refs = JSON.parse(obj.references) as string[];
  const signers = activeKeys(cache.keys);
  const stored = storedSignatures(obj);
  let fingerprint: string | undefined;
  const sigs = signers.map(
    (k) => stored.get(k.public_key) ?? signingKey(k.secret_key).sign((fingerprint ??= narFingerprint(obj.store_path, obj.nar.nar_hash, obj.nar.nar_size, refs, cache.store_dir))),
  );
  const publicKeys = signers.map((k) => k.public_key).join('\n');
  if (obj.server_sig_key !== publicKeys) await setServerSignatures(db, obj.id, sigs.join('\n'), publicKeys);
  // A pushed signature under one of our key names (a `nix store sign` re-PUT, or a retired key's) is not served.
  const clientSigs = foreignSignatures(cache, JSON.parse(obj.client_sigs) as string[]);
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
    sigs: [...sigs, ...clientSigs],
    ca: obj.ca ?? undefined,
  });
}
