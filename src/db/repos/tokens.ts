import type { Kysely } from 'kysely';
import type { Database } from '../schema.ts';

export async function loadRevokedJtis(db: Kysely<Database>): Promise<Set<string>> {
  const rows = await db.selectFrom('revoked_tokens').select('jti').execute();
  return new Set(rows.map((r) => r.jti));
}

export async function revokeToken(db: Kysely<Database>, jti: string, expiresAt: number | null): Promise<void> {
  await db
    .insertInto('revoked_tokens')
    .values({ jti, revoked_at: Date.now(), expires_at: expiresAt })
    .onConflict((oc) => oc.column('jti').doNothing())
    .execute();
}

export async function recordIssuedToken(
  db: Kysely<Database>,
  t: { jti: string; sub: string; claims: unknown; createdBy: string | null; expiresAt: number },
): Promise<void> {
  await db
    .insertInto('issued_tokens')
    .values({
      jti: t.jti,
      sub: t.sub,
      claims: JSON.stringify(t.claims),
      created_by: t.createdBy,
      created_at: Date.now(),
      expires_at: t.expiresAt,
    })
    .execute();
}

export async function listIssuedTokens(db: Kysely<Database>) {
  return db
    .selectFrom('issued_tokens as t')
    .leftJoin('revoked_tokens as r', 'r.jti', 't.jti')
    .select(['t.jti', 't.sub', 't.claims', 't.created_by', 't.created_at', 't.expires_at', 'r.revoked_at'])
    .orderBy('t.created_at', 'desc')
    .execute();
}
