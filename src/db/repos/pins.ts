import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database, PinRow } from '../schema.ts';

const DAY_MS = 86_400_000;

/**
 * The pin revisions of a cache that still hold their path (columns id, pin_id, store_path_hash,
 * store_path, pinned_at). A pin's current target always does; an older one while it is among
 * the pin's last `keep_revisions` targets or younger than `keep_days`; with neither limit set,
 * every target is kept.
 */
export function keptPinRevisions(cacheId: number, now: number): RawBuilder<unknown> {
  return sql`SELECT id, pin_id, store_path_hash, store_path, pinned_at FROM (
      SELECT pr.id, pr.pin_id, pr.store_path_hash, pr.store_path, pr.pinned_at, p.keep_revisions, p.keep_days,
        ROW_NUMBER() OVER (PARTITION BY pr.pin_id ORDER BY pr.id DESC) AS rn
      FROM pin_revisions pr JOIN pins p ON p.id = pr.pin_id
      WHERE pr.cache_id = ${cacheId}
    ) revisions
    WHERE rn = 1
      OR (keep_revisions IS NULL AND keep_days IS NULL)
      OR rn <= keep_revisions
      OR pinned_at >= CAST(${now} AS BIGINT) - CAST(keep_days AS BIGINT) * ${DAY_MS}`;
}
export interface KeptRevision {
  id: number;
  pin_id: number;
  store_path_hash: string;
  store_path: string;
  pinned_at: number;
}

export async function listKeptRevisions(db: Kysely<Database>, cacheId: number, now: number): Promise<KeptRevision[]> {
  const { rows } = await sql<KeptRevision>`${keptPinRevisions(cacheId, now)} ORDER BY id DESC`.execute(db);
  return rows.map((r) => ({ ...r, id: Number(r.id), pin_id: Number(r.pin_id), pinned_at: Number(r.pinned_at) }));
}

/** Drops the revisions that keep nothing any more (see keptPinRevisions). */
export async function prunePinRevisions(db: Kysely<Database>, cacheId: number, now: number): Promise<void> {
  await sql`DELETE FROM pin_revisions WHERE cache_id = ${cacheId}
    AND id NOT IN (SELECT id FROM (${keptPinRevisions(cacheId, now)}) kept)`.execute(db);
}

export function listPins(db: Kysely<Database>, cacheId: number): Promise<PinRow[]> {
  return db.selectFrom('pins').selectAll().where('cache_id', '=', cacheId).orderBy('name').execute();
}

/** Creates the pin or updates its limits, and makes the path its current target. */
export async function setPin(
  db: Kysely<Database>,
  pin: Omit<PinRow, 'id'>,
  target: { store_path_hash: string; store_path: string },
): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const { id } = await tx
      .insertInto('pins')
      .values(pin)
      .onConflict((oc) =>
        oc.columns(['cache_id', 'name']).doUpdateSet((eb) => ({
          keep_revisions: eb.ref('excluded.keep_revisions'),
          keep_days: eb.ref('excluded.keep_days'),
        })),
      )
      .returning('id')
      .executeTakeFirstOrThrow();
    const current = await tx
      .selectFrom('pin_revisions')
      .select('store_path_hash')
      .where('pin_id', '=', id)
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (current?.store_path_hash === target.store_path_hash) return;
    await tx
      .insertInto('pin_revisions')
      .values({ pin_id: id, cache_id: pin.cache_id, ...target, pinned_at: pin.created_at })
      .execute();
  });
}

export async function deletePin(db: Kysely<Database>, cacheId: number, name: string): Promise<boolean> {
  const res = await db.deleteFrom('pins').where('cache_id', '=', cacheId).where('name', '=', name).executeTakeFirst();
  return Number(res.numDeletedRows) > 0;
}
