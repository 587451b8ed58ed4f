import type { Kysely } from 'kysely';
import { contentAddressedPath, parseContentAddress, parseStorePath, parseStorePathBaseName, type StorePath } from '../nix/store-path.ts';
import { formatSha256Nix32, parseSha256 } from '../nix/hash.ts';
import { NixFormatError } from '../nix/errors.ts';
import type { PathInfo } from '../nix/narinfo.ts';
import type { CacheRow, Database, NarRow } from '../db/schema.ts';
import type { PathOutcome } from '../api/v1.ts';
import { findObject, insertObjectIfAbsent, upsertObject } from '../db/repos/objects.ts';
import { badRequest, conflict, excerpt } from './errors.ts';
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
    if (m.ca !== undefined && typeof m.ca !== 'string') throw badRequest('the CA field must be a string');
    const narHash = formatSha256Nix32(parseSha256(m.narHash));
    if (m.ca !== undefined) checkContentAddress(sp, m.ca, references, narHash);
    return {
      storePath: sp.path,
      hash: sp.hash,
      narHash,
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
 * As Nix does on import: a content-addressed path's name must follow from its CA field and
 * references, and a `fixed:r:sha256` one (without a self-reference) hashes to its own NAR hash.
 */
function checkContentAddress(sp: StorePath, caField: string, references: string[], narHash: string): void {
  const ca = parseContentAddress(caField);
  const expected = contentAddressedPath(ca, sp.name, references, sp.baseName, sp.storeDir);
  if (expected !== sp.path) {
    throw badRequest(`${sp.path} does not follow from its CA field '${excerpt(caField)}' and references: that content is ${expected}`);
  }
  if (ca.method === 'recursive' && ca.algorithm === 'sha256' && !references.includes(sp.baseName)) {
    if (formatSha256Nix32(ca.digest) !== narHash) {
      throw badRequest(`NarHash ${narHash} of ${sp.path} does not match its CA field '${caField}'`);
    }
  }
}

/**
 * Makes the path visible in the cache: the last step of every push, and of a pull-through
 * (`upstream` names where it came from; a later push of the path makes it the cache's own). The
 * first NAR of a path is kept: a different one (or different references) is a conflict unless
 * `replace` is set.
 */
export async function recordPath(
  db: Kysely<Database>,
  cache: CacheRow,
  p: ValidPath,
  nar: NarRow,
  sub: string | null,
  opts: { replace?: boolean; upstream?: string } = {},
): Promise<PathOutcome> {
  if (nar.nar_hash !== p.narHash || nar.nar_size !== p.narSize) {
    throw badRequest(
      `NarHash/NarSize mismatch for ${p.storePath}: claimed ${p.narHash} (${p.narSize} bytes), ` +
        `the uploaded NAR is ${nar.nar_hash} (${nar.nar_size} bytes)`,
    );
  }
  // Signatures under the cache's own key names are dropped when served (core/narinfo.ts).
  const clientSigs = [...new Set(p.sigs)];
  const now = Date.now();
  const row = {
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
  };
  for (;;) {
    const existing = await findObject(db, cache.id, p.hash);
    if (!existing) {
      if (await insertObjectIfAbsent(db, row)) return 'created';
      continue; // a concurrent push recorded it first: decide against that one
    }
    if (existing.nar_id === nar.id && existing.references === row.references) {
      await upsertObject(db, { ...row, created_by: existing.created_by });
      return 'unchanged';
    }
    if (!opts.replace) {
      throw conflict(
        `${p.storePath} is already in cache '${cache.name}' with a different NAR or references ` +
          `(NarHash ${existing.nar.nar_hash}); the first upload is kept. Replacing it needs the 'delete' permission and ?replace=true`,
      );
    }
    await upsertObject(db, row);
    return 'replaced';
  }
}
