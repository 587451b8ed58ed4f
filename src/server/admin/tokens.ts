import { access } from 'node:fs/promises';
import path from 'node:path';
import { openDatabase } from '../../db/dialect.ts';
import { migrateToLatest } from '../../db/migrate.ts';
import { revokeToken } from '../../db/repos/tokens.ts';
import { parseDuration, type IssuedToken, type Permission } from '../../token/index.ts';
import { ensureTokenSecret } from '../bootstrap.ts';
import type { ServerConfig } from '../config.ts';
import { tokenAuthorityFor } from '../services.ts';

export interface OfflineTokenOptions {
  sub: string;
  /** A duration such as `90d` (parseDuration). */
  validity: string;
  caches: Record<string, Permission[]>;
  admin?: boolean;
}

/** Same rule as POST /_api/v1/tokens/{jti}/revoke. */
const JTI_RE = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Signs a token with the server's own key material, without a running server
 * (like `atticadm make-token`). Unlike server start-up it never generates an
 * HS256 secret: a token signed with a fresh secret would be useless.
 */
export async function createTokenOffline(cfg: ServerConfig, opts: OfflineTokenOptions): Promise<IssuedToken> {
  const authority = await tokenAuthorityFor(await existingTokenSecret(cfg));
  if (!authority.canSign) {
    throw new Error('cannot sign tokens: the server config has a public key only (auth.private_key_file is not set)');
  }
  return authority.issue({ sub: opts.sub, validitySeconds: parseDuration(opts.validity), caches: opts.caches, admin: opts.admin });
}

/** Adds `jti` to the deny list in the server's database; servers refuse it within auth.revocation_ttl_ms. */
export async function revokeTokenOffline(cfg: ServerConfig, jti: string): Promise<void> {
  if (!JTI_RE.test(jti)) throw new Error(`invalid token id '${jti.slice(0, 64)}'`);
  const db = openDatabase(cfg.database);
  try {
    await migrateToLatest(db);
    await revokeToken(db.kysely, jti, null);
  } finally {
    await db.close();
  }
}

async function existingTokenSecret(cfg: ServerConfig): Promise<ServerConfig> {
  if (cfg.auth.algorithm !== 'HS256' || cfg.auth.hs256Secret) return cfg;
  const file = path.join(cfg.dataDir, 'token-secret');
  try {
    await access(file);
  } catch {
    throw new Error(
      `no token secret: ${file} does not exist and neither auth.hs256_secret nor LOFT_TOKEN_HS256_SECRET is set ` +
        '(point --server-config or LOFT_DATA_DIR at the server, or start the server once to generate it)',
    );
  }
  return ensureTokenSecret(cfg);
}
