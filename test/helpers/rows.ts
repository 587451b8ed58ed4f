// Rows written straight through the repositories, for tests of the database layer.
import assert from 'node:assert/strict';
import type { Kysely } from 'kysely';
import { insertCache } from '../../src/db/repos/caches.ts';
import type { CacheRow, Database } from '../../src/db/schema.ts';
import { SigningKey } from '../../src/nix/signing.ts';

/** A cache with a fresh signing key, private, in /nix/store. */
export async function insertTestCache(db: Kysely<Database>, name: string, retentionSeconds: number | null = null): Promise<CacheRow> {
  const key = SigningKey.generate(`loft-${name}-1`);
  const row = await insertCache(db, {
    name,
    signing_key: key.toString(),
    public_key: key.publicKey().toString(),
    is_public: 0,
    priority: 41,
    store_dir: '/nix/store',
    upstream_key_names: '[]',
    retention_seconds: retentionSeconds,
    created_at: Date.now(),
  });
  assert.ok(row, `cache ${name} inserted`);
  return row;
}
