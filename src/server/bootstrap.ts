import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateHs256Secret, ALL_PERMISSIONS } from '../token/index.ts';
import { recordIssuedToken } from '../db/repos/tokens.ts';
import { PRIVATE_DIR, PRIVATE_FILE } from '../storage/modes.ts';
import type { ServerConfig } from './config.ts';
import type { Services } from './services.ts';

/** The data directory, created private (0700) if it does not exist yet, whatever the token algorithm. */
export async function ensureDataDir(cfg: ServerConfig): Promise<void> {
  await mkdir(cfg.dataDir, { recursive: true, mode: PRIVATE_DIR });
}

/**
 * Embedded defaults: without a configured HS256 secret, one is generated
 * into the data directory on first start and reused after.
 */
export async function ensureTokenSecret(cfg: ServerConfig): Promise<ServerConfig> {
  const a = cfg.auth;
  if (a.algorithm !== 'HS256' || a.hs256Secret) return cfg;
  const file = path.join(cfg.dataDir, 'token-secret');
  let secret: string;
  try {
    secret = (await readFile(file, 'utf8')).trim();
  } catch {
    await ensureDataDir(cfg);
    secret = generateHs256Secret();
    await writeFile(file, secret + '\n', { mode: PRIVATE_FILE, flag: 'wx' });
  }
  return { ...cfg, auth: { ...a, hs256Secret: secret } };
}

export interface StartupReport {
  createdCache?: string;
  /** Set when a new admin token was generated on this start. */
  adminToken?: string;
  adminTokenFile?: string;
}

/**
 * First start: the default cache and its key, and an admin token. Idempotent. A default cache
 * declared in the config is left to applyDeclaredCaches, which creates it with its own keys.
 */
export async function firstStart(s: Services): Promise<StartupReport> {
  const report: StartupReport = {};
  const cfg = s.config;
  const declared = cfg.declaredCaches.some((d) => d.name === cfg.defaultCache);
  if (cfg.defaultCache && !declared && (await s.caches.list()).length === 0) {
    await s.caches.create(cfg.defaultCache, { isPublic: true });
    report.createdCache = cfg.defaultCache;
  }
  if (!cfg.auth.adminToken && s.tokens.canSign) {
    const file = path.join(cfg.dataDir, 'admin-token');
    report.adminTokenFile = file;
    try {
      await readFile(file);
    } catch {
      const issued = await s.tokens.issue({
        sub: 'admin',
        validitySeconds: Math.min(365 * 86400, cfg.auth.maxTokenValiditySeconds),
        caches: { '*': [...ALL_PERMISSIONS] },
        admin: true,
      });
      await ensureDataDir(cfg);
      await writeFile(file, issued.token + '\n', { mode: PRIVATE_FILE });
      await recordIssuedToken(s.kysely, {
        jti: issued.jti,
        sub: 'admin',
        claims: issued.claims,
        createdBy: null,
        expiresAt: issued.expiresAt.getTime(),
      });
      report.adminToken = issued.token;
    }
  }
  return report;
}
