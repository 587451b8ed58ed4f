import { readFile } from 'node:fs/promises';
import os from 'node:os';
import type { Kysely } from 'kysely';
import { openDatabase, type Db } from '../db/dialect.ts';
import type { Database } from '../db/schema.ts';
import { createBlobStore } from '../storage/index.ts';
import type { BlobStore } from '../storage/types.ts';
import { ChunkWorkerPool } from '../compression/pool.ts';
import { ChunkStore } from '../core/chunk-store.ts';
import { CacheService } from '../core/caches.ts';
import type { PushDeps } from '../core/push.ts';
import { CachedRevocationList, TokenAuthority } from '../token/index.ts';
import { loadRevokedJtis } from '../db/repos/tokens.ts';
import { AccessControl } from './access.ts';
import type { ServerConfig } from './config.ts';
import { validateChunkingParams } from '../chunking/fastcdc.ts';
import { Metrics } from './metrics.ts';
import { NarInfoCache } from '../core/narinfo-cache.ts';
import { UsageRecorder } from '../core/usage.ts';
import { AccessTracker } from '../core/access-tracker.ts';
import { PullThrough } from '../core/pull-through.ts';

/** Everything a request handler needs, built once per process. */
export interface Services {
  config: ServerConfig;
  db: Db;
  kysely: Kysely<Database>;
  /**
   * Garbage collection's database: on PostgreSQL one connection of its own, with the longer
   * `gc.statement_timeout_ms` (a closure query over a million paths outlasts a request's 30 s, and
   * must not hold a connection of the request pool); on SQLite the one connection there is.
   */
  gcDb: Db;
  blobs: BlobStore;
  pool: ChunkWorkerPool;
  chunkStore: ChunkStore;
  caches: CacheService;
  tokens: TokenAuthority;
  access: AccessControl;
  push: PushDeps;
  metrics: Metrics;
  narinfoCache: NarInfoCache;
  usage: UsageRecorder;
  /** Batched last-access writes (narinfo hits, NAR downloads), for retention. */
  accessTracker: AccessTracker;
  pullThrough: PullThrough;
  close(): Promise<void>;
}

export async function tokenAuthorityFor(cfg: ServerConfig): Promise<TokenAuthority> {
  const a = cfg.auth;
  return TokenAuthority.create({
    algorithm: a.algorithm,
    hs256Secret: a.hs256Secret,
    privateKeyPem: a.privateKeyFile ? await readFile(a.privateKeyFile, 'utf8') : undefined,
    publicKeyPem: a.publicKeyFile ? await readFile(a.publicKeyFile, 'utf8') : undefined,
    issuer: a.issuer,
    audience: a.audience,
    maxValiditySeconds: a.maxTokenValiditySeconds,
  });
}

export async function createServices(config: ServerConfig): Promise<Services> {
  validateChunkingParams(config.chunking);
  const db = openDatabase(config.database);
  const gcDb = db.kind === 'postgres' ? openDatabase({ ...config.database, poolSize: 1, statementTimeoutMs: config.gc.statementTimeoutMs }) : db;
  const blobs = await createBlobStore(config.storage);
  const pool = new ChunkWorkerPool({
    threads: config.compression.threads || Math.max(1, os.availableParallelism()),
    level: config.compression.level,
  });
  const chunkStore = new ChunkStore(db.kysely, blobs, pool, { packTargetSize: config.packs.targetSize });
  const tokens = await tokenAuthorityFor(config);
  const caches = new CacheService(db.kysely, config.keyNamePrefix);
  const metrics = new Metrics({ dbPool: db.poolStats, workers: () => pool.load });
  const usage = new UsageRecorder(db.kysely, {
    flushIntervalMs: config.metrics.historyFlushSeconds * 1000,
    historyDays: config.metrics.historyDays,
    onSnapshot: (cache, st) => metrics.cacheStorage(cache, st),
  });
  const accessTracker = new AccessTracker(db.kysely, config.gc.accessFlushSeconds * 1000, (err) =>
    console.error('loft: recording path use failed; retrying at the next flush', err),
  );
  const revocations = new CachedRevocationList(() => loadRevokedJtis(db.kysely), { ttlMs: config.auth.revocationTtlMs });
  return {
    config,
    db,
    kysely: db.kysely,
    gcDb,
    blobs,
    pool,
    chunkStore,
    caches,
    tokens,
    access: new AccessControl(tokens, revocations, config.auth.adminToken),
    push: {
      db: db.kysely,
      store: chunkStore,
      chunking: config.chunking,
      maxNarSize: config.maxNarSize,
      maxNarSizePerCache: config.limits.maxNarSizePerCache,
      maxExpansionRatio: config.limits.maxExpansionRatio,
    },
    metrics,
    narinfoCache: new NarInfoCache(),
    usage,
    accessTracker,
    pullThrough: new PullThrough({
      db: db.kysely,
      store: chunkStore,
      chunking: config.chunking,
      maxNarSize: config.maxNarSize,
      findCache: (name) => caches.find(name),
      observer: metrics.upstreamObserver,
      settings: config.upstream,
    }),
    async close() {
      await accessTracker.close().catch(() => {});
      await usage.close().catch(() => {});
      await pool.close();
      if (gcDb !== db) await gcDb.close();
      await db.close();
    },
  };
}
