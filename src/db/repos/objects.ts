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

/**
 * Inserts the cache's entry for a store path unless it has one, with its object_refs rows in the
 * same transaction; false when another push got there first.
 */
export async function insertObjectIfAbsent(db: Kysely<Database>, obj: NewObject): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const inserted = await tx
      .insertInto('objects')
      .values(obj)
      .onConflict((oc) => oc.columns(['cache_id', 'store_path_hash']).doNothing())
      .returning('id')
      .executeTakeFirst();
    if (inserted) await writeRefs(tx, inserted.id, obj);
    return inserted !== undefined;
  });
}

/**
 * Inserts or replaces the cache's entry for a store path (re-push, re-signing by `nix store sign`),
 * and its reference rows with it: the JSON (served in narinfos) and object_refs (walked by GC)
 * change together, in one transaction.
 */
export async function upsertObject(db: Kysely<Database>, obj: NewObject): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const { id } = await tx
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
      .returning('id')
      .executeTakeFirstOrThrow();
    await tx.deleteFrom('object_refs').where('object_id', '=', id).execute();
    await writeRefs(tx, id, obj);
  });
}

/** The object_refs rows of a path: one per distinct referenced store path hash. */
async function writeRefs(tx: Kysely<Database>, objectId: number, obj: NewObject): Promise<void> {
  const refHashes = [...new Set((JSON.parse(obj.references) as string[]).map((r) => r.slice(0, 32)))];
  for (let i = 0; i < refHashes.length; i += IN_BATCH) {
    const batch = refHashes.slice(i, i + IN_BATCH).map((ref_hash) => ({ object_id: objectId, cache_id: obj.cache_id, ref_hash }));
    await tx.insertInto('object_refs').values(batch).execute();
  }
}

/** The cache keys' signatures, one per line, and their public keys, line for line. */
export async function setServerSignatures(
  db: Kysely<Database>,
  objectId: number,
  sigs: string,
  publicKeys: string,
): Promise<void> {
  await db
    .updateTable('objects')
    .set({ server_sig: sigs, server_sig_key: publicKeys })
    .where('id', '=', objectId)
    .execute();
}

/**
 * Records use, for retention: the cache's paths with these store path hashes (or holding these
 * NARs: a download is use of every path of the cache that holds the NAR) were used at `now`.
 */
export async function touchObjects(
  db: Kysely<Database>,
  cacheId: number,
  by: { column: 'store_path_hash'; values: string[] } | { column: 'nar_id'; values: number[] },
  now: number,
): Promise<void> {
  for (let i = 0; i < by.values.length; i += IN_BATCH) {
    await db
      .updateTable('objects')
      .set({ last_accessed_at: now })
      .where('cache_id', '=', cacheId)
      .where(by.column, 'in', by.values.slice(i, i + IN_BATCH))
      .where('last_accessed_at', '<', now)
      .execute();
  }
}
