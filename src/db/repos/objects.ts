import type { Kysely } from 'kysely';
import type { Database, NewObject, NarRow, ObjectRow } from '../schema.ts';

export interface ObjectWithNar extends ObjectRow {
  nar: NarRow;
}

// SQLite and PostgreSQL both cap bound parameters; stay well below both limits.
const IN_BATCH = 5000;

export async function findObject(
  db: Kysely<Database>,
  cacheId: number,
  storePathHash: string,
): Promise<ObjectWithNar | undefined> {
  const row = await db
    .selectFrom('objects as o')
    .innerJoin('nars as n', 'n.id', 'o.nar_id')
    .selectAll('o')
    .select([
      'n.nar_hash as n_nar_hash',
      'n.nar_size as n_nar_size',
      'n.file_hash as n_file_hash',
      'n.file_size as n_file_size',
      'n.chunk_count as n_chunk_count',
      'n.created_at as n_created_at',
    ])
    .where('o.cache_id', '=', cacheId)
    .where('o.store_path_hash', '=', storePathHash)
    .executeTakeFirst();
  if (!row) return undefined;
  const { n_nar_hash, n_nar_size, n_file_hash, n_file_size, n_chunk_count, n_created_at, ...object } = row;
  return {
    ...object,
    nar: {
      id: object.nar_id,
      nar_hash: n_nar_hash,
      nar_size: n_nar_size,
      file_hash: n_file_hash,
      file_size: n_file_size,
      chunk_count: n_chunk_count,
      created_at: n_created_at,
    },
  };
}

/** The subset of `hashes` that the cache does not hold. */
export async function findMissingPaths(
  db: Kysely<Database>,
  cacheId: number,
  hashes: string[],
): Promise<string[]> {
  const present = new Set<string>();
  for (let i = 0; i < hashes.length; i += IN_BATCH) {
    const batch = hashes.slice(i, i + IN_BATCH);
    const rows = await db
      .selectFrom('objects')
      .select('store_path_hash')
      .where('cache_id', '=', cacheId)
      .where('store_path_hash', 'in', batch)
      .execute();
    for (const r of rows) present.add(r.store_path_hash);
  }
  return hashes.filter((h) => !present.has(h));
}

/** Inserts or replaces the cache's entry for a store path (re-push, re-signing by `nix store sign`). */
export async function upsertObject(db: Kysely<Database>, obj: NewObject): Promise<void> {
  await db
    .insertInto('objects')
    .values(obj)
    .onConflict((oc) =>
      oc.columns(['cache_id', 'store_path_hash']).doUpdateSet((eb) => ({
        store_path: eb.ref('excluded.store_path'),
        nar_id: eb.ref('excluded.nar_id'),
        references: eb.ref('excluded.references'),
        deriver: eb.ref('excluded.deriver'),
        ca: eb.ref('excluded.ca'),
        client_sigs: eb.ref('excluded.client_sigs'),
        server_sig: eb.ref('excluded.server_sig'),
        server_sig_key: eb.ref('excluded.server_sig_key'),
        created_by: eb.ref('excluded.created_by'),
        last_accessed_at: eb.ref('excluded.last_accessed_at'),
        upstream: eb.ref('excluded.upstream'),
      })),
    )
    .execute();
}

export async function setServerSignature(
  db: Kysely<Database>,
  objectId: number,
  sig: string,
  publicKey: string,
): Promise<void> {
  await db
    .updateTable('objects')
    .set({ server_sig: sig, server_sig_key: publicKey })
    .where('id', '=', objectId)
    .execute();
}

/** Records a download, for retention: every path of the cache that holds this NAR was used. */
export async function touchNar(db: Kysely<Database>, cacheId: number, narId: number, now: number): Promise<void> {
  await db
    .updateTable('objects')
    .set({ last_accessed_at: now })
    .where('cache_id', '=', cacheId)
    .where('nar_id', '=', narId)
    .execute();
}

