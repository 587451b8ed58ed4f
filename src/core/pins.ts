import type { Kysely } from 'kysely';
import type { CacheRow, Database } from '../db/schema.ts';
import type { Pin, PinBody } from '../api/v1.ts';
import { findObject } from '../db/repos/objects.ts';
import { deletePin, listKeptRevisions, listPins, prunePinRevisions, setPin } from '../db/repos/pins.ts';
import { parseStorePath, parseStorePathBaseName, isValidStorePathHash } from '../nix/store-path.ts';
import { NixFormatError } from '../nix/errors.ts';
import { badRequest, notFound } from './errors.ts';

const PIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

function checkName(name: string): void {
  if (!PIN_NAME.test(name)) throw badRequest(`invalid pin name '${name}': use 1-128 characters [A-Za-z0-9._+-], starting with a letter or digit`);
}

function checkLimit(what: string, v: number | null | undefined): number | null {
  if (v === undefined || v === null) return null;
  if (!Number.isSafeInteger(v) || v < 1) throw badRequest(`${what} must be a positive integer, not ${v}`);
  return v;
}

/** The hash of a full store path, a base name or a bare hash. */
function storePathHashOf(cache: CacheRow, arg: string): string {
  if (isValidStorePathHash(arg)) return arg;
  try {
    return arg.startsWith('/') ? parseStorePath(arg, cache.store_dir).hash : parseStorePathBaseName(arg, cache.store_dir).hash;
  } catch (e) {
    if (e instanceof NixFormatError) throw badRequest(`invalid store path '${arg}': ${e.message}`);
    throw e;
  }
}

/**
 * Pins a path of the cache under a name; pinning again under the same name moves the pin and
 * keeps the earlier targets as its limits say. The path must be in the cache.
 */
export async function pinPath(db: Kysely<Database>, cache: CacheRow, name: string, body: PinBody, sub: string | null): Promise<Pin> {
  checkName(name);
  const keepRevisions = checkLimit('keep_revisions', body.keep_revisions);
  const keepDays = checkLimit('keep_days', body.keep_days);
  const hash = storePathHashOf(cache, body.store_path);
  const obj = await findObject(db, cache.id, hash);
  if (!obj) throw notFound(`${body.store_path}: no such path in cache '${cache.name}' (push it before pinning it)`);
  const now = Date.now();
  await setPin(
    db,
    { cache_id: cache.id, name, keep_revisions: keepRevisions, keep_days: keepDays, created_by: sub, created_at: now },
    { store_path_hash: obj.store_path_hash, store_path: obj.store_path },
  );
  await prunePinRevisions(db, cache.id, now);
  const pin = (await pinsOf(db, cache)).find((p) => p.name === name);
  if (!pin) throw notFound(`pin '${name}' was removed meanwhile`);
  return pin;
}

/** The cache's pins, each with the targets it still keeps, newest first. */
export async function pinsOf(db: Kysely<Database>, cache: CacheRow): Promise<Pin[]> {
  const revisions = await listKeptRevisions(db, cache.id, Date.now());
  return (await listPins(db, cache.id)).flatMap((p) => {
    const kept = revisions.filter((r) => r.pin_id === Number(p.id));
    if (kept.length === 0) return [];
    return [
      {
        name: p.name,
        store_path: kept[0].store_path,
        keep_revisions: p.keep_revisions,
        keep_days: p.keep_days,
        created_by: p.created_by,
        created_at: new Date(p.created_at).toISOString(),
        revisions: kept.map((r) => ({ store_path: r.store_path, pinned_at: new Date(r.pinned_at).toISOString() })),
      },
    ];
  });
}

export async function unpin(db: Kysely<Database>, cache: CacheRow, name: string): Promise<void> {
  if (!(await deletePin(db, cache.id, name))) throw notFound(`no pin '${name}' in cache '${cache.name}'`);
}
