import type { Kysely } from 'kysely';

// The orphan-blob sweep looks chunks up by storage key.
export const chunkStorageKeyIndex = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.createIndex('chunks_storage_key').on('chunks').column('storage_key').execute();
  },
  async down(): Promise<void> {
    throw new Error('migrations are append-only');
  },
};
