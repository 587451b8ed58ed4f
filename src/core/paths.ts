import type { Kysely } from 'kysely';
import { parseStorePath, parseStorePathBaseName } from '../nix/store-path.ts';
import { formatSha256Nix32, parseSha256 } from '../nix/hash.ts';
import { NixFormatError } from '../nix/errors.ts';
import { SigningKey } from '../nix/signing.ts';
import type { PathInfo } from '../nix/narinfo.ts';
import type { CacheRow, Database, NarRow } from '../db/schema.ts';
import { upsertObject } from '../db/repos/objects.ts';
import { badRequest } from './errors.ts';


export interface ValidPath extends PathInfo {
  hash: string;
}

const MAX_REFERENCES = 100_000;

/** Checks and normalises pushed metadata; every problem is a 400 that says what was wrong. */
export function validatePathMetadata(cache: CacheRow, m: PathInfo, expectedHash?: string): ValidPath {
  try {
    const sp = parseStorePath(m.storePath, cache.store_dir);
    if (expectedHash !== undefined && sp.hash !== expectedHash) {
      throw badRequest(`store path ${m.storePath} does not match the hash ${expectedHash} it was uploaded under`);
    }
    if (!Number.isSafeInteger(m.narSize) || m.narSize < 0) throw badRequest(`invalid NarSize ${m.narSize}`);
    if (!Array.isArray(m.references) || m.references.length > MAX_REFERENCES) {
      throw badRequest('references must be an array of store path base names');
    }
    const references = [...new Set(m.references.map((r) => parseStorePathBaseName(r, cache.store_dir).baseName))].sort();
    const deriver = m.deriver ? parseStorePathBaseName(m.deriver, cache.store_dir).baseName : undefined;
    if (!Array.isArray(m.sigs) || m.sigs.some((s) => typeof s !== 'string' || !/^[^:\s]+:[A-Za-z0-9+/=]+$/.test(s))) {
      throw badRequest('signatures must be strings of the form NAME:BASE64');
    }
    if (m.ca !== undefined && (typeof m.ca !== 'string' || !/^(fixed|text):\S+$/.test(m.ca))) {
      throw badRequest(`invalid CA field '${m.ca}'`);
    }
    return {
      storePath: sp.path,
      hash: sp.hash,
      narHash: formatSha256Nix32(parseSha256(m.narHash)),
      narSize: m.narSize,
      references,
      deriver,
      sigs: m.sigs,
      ca: m.ca,
    };
  } catch (e) {
    if (e instanceof NixFormatError) throw badRequest(e.message);
    throw e;
  }
}

/**
 * Makes the path visible in the cache: the last step of every push, and of a pull-through
 * (`upstream` names where it came from; a later push of the path makes it the cache's own).
 */
export async function recordPath(
  db: Kysely<Database>,
  cache: CacheRow,
  p: ValidPath,
  nar: NarRow,
  sub: string | null,
  opts: { upstream?: string } = {},
): Promise<void> {
  if (nar.nar_hash !== p.narHash || nar.nar_size !== p.narSize) {
    throw badRequest(
      `NarHash/NarSize mismatch for ${p.storePath}: claimed ${p.narHash} (${p.narSize} bytes), ` +
        `the uploaded NAR is ${nar.nar_hash} (${nar.nar_size} bytes)`,
    );
  }
  // A narinfo re-PUT by `nix store sign` carries our own signature; it is re-made from the key, not stored twice.
  const ownName = SigningKey.parse(cache.signing_key).name;
  const clientSigs = [...new Set(p.sigs)].filter((s) => !s.startsWith(`${ownName}:`));
  const now = Date.now();
  await upsertObject(db, {
    cache_id: cache.id,
    store_path_hash: p.hash,
    store_path: p.storePath,
    nar_id: nar.id,
    references: JSON.stringify(p.references),
    deriver: p.deriver ?? null,
    ca: p.ca ?? null,
    client_sigs: JSON.stringify(clientSigs),
    server_sig: null,
    server_sig_key: null,
    created_by: sub,
    created_at: now,
    last_accessed_at: now,
    upstream: opts.upstream ?? null,
  });
}
