import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import type { ChunkingParams } from '../chunking/fastcdc.ts';
import type { StorageConfig } from '../storage/index.ts';
import { isValidCacheName } from '../token/patterns.ts';
import { invalidCacheNameMessage } from '../core/caches.ts';
import { parseDuration } from '../token/duration.ts';

/** Every key, its default and its env override are documented in docs/config.md. */
export interface ServerConfig {
  listen: { host: string; port: number };
  dataDir: string;
  /** Base URL clients reach the server at (printed, and used in the cache config API). */
  publicUrl?: string;
  logLevel: string;
  /** Level of the one access-log line per request, or 'off'. */
  accessLog: string;
  /** Created with a fresh key on first start when no cache exists (empty = none). */
  defaultCache: string;
  keyNamePrefix: string;
  maxNarSize: number;
  /** Largest body of a chunk-upload request. */
  maxChunkRequestBytes: number;
  /** Largest narinfo / JSON metadata accepted. */
  maxMetadataBytes: number;
  /** An upload that sends no byte for this long is aborted (Nix 2.8 retries PUTs without a body). */
  bodyIdleTimeoutMs: number;
  /** Bytes per second a request body must average after its first 10 s (0 = no minimum). */
  minBodyRate: number;
  /** Node's headersTimeout: the request line and headers must arrive within this. */
  headersTimeoutMs: number;
  /** Node's requestTimeout: a whole request, body included, must arrive within this (0 = none). */
  requestTimeoutMs: number;
  database: { url: string; poolSize: number; statementTimeoutMs: number };
  storage: StorageConfig;
  /** Pack files (docs/storage.md): a pack is closed at this many bytes. */
  packs: { targetSize: number };
  chunking: ChunkingParams;
  compression: { level: number; threads: number };
  auth: {
    /** A root token accepted besides JWTs (LOFT_ADMIN_TOKEN). */
    adminToken?: string;
    algorithm: 'HS256' | 'RS256' | 'EdDSA';
    hs256Secret?: string;
    privateKeyFile?: string;
    publicKeyFile?: string;
    issuer?: string;
    audience?: string;
    revocationTtlMs: number;
    /** Longest validity a token may be issued with (auth.max_token_validity, default 1y). */
    maxTokenValiditySeconds: number;
  };
  gc: {
    intervalSeconds: number;
    defaultRetentionSeconds: number;
    stagingGraceSeconds: number;
    /** PostgreSQL statement_timeout of GC's own connection: its closure queries outlast a request's. */
    statementTimeoutMs: number;
    /** Packs whose live bytes fall below this share of their size are rewritten. */
    compactBelow: number;
    /** Path use (narinfo hits, downloads) is written to the database in batches this often. */
    accessFlushSeconds: number;
    /** Retention of paths pulled from an upstream, for caches without their own. */
    upstreamRetentionSeconds: number;
  };
  /** Pull-through toward each upstream of a cache (docs/config.md, [upstream]). */
  upstream: { timeoutMs: number; maxConcurrency: number; negativeTtlSeconds: number; positiveTtlSeconds: number };
  metrics: {
    /** When set, GET /metrics needs `Authorization: Bearer <token>` (or an admin token). */
    token?: string;
    /** How often each replica adds its counts to the dashboard's hourly history. */
    historyFlushSeconds: number;
    historyDays: number;
  };
  limits: PushLimits;
  /** `[caches.NAME]` tables (and LOFT_SIGNING_KEY[_FILE] for the default cache): applied at every start. */
  declaredCaches: DeclaredCache[];
}

/** Where a declared cache's secret key(s) come from: a file (or a mounted secret) or an env var's value. */
export type KeySource = { file: string } | { env: string; text: string };

export interface DeclaredCache {
  name: string;
  /** Used only when the cache is created. */
  isPublic: boolean;
  signingKeys?: KeySource;
}

/** The work one push may cause ([limits], docs/config.md). */
export interface PushLimits {
  /** Pushes one token may have in flight on this replica; more get 429 with Retry-After (0 = no limit). */
  maxConcurrentPushesPerToken: number;
  /** Decompressed NAR bytes per received byte of a `nix copy` upload, beyond its first 64 MiB (0 = no limit). */
  maxExpansionRatio: number;
  /** max_nar_size for particular caches, by name. */
  maxNarSizePerCache: Record<string, number>;
}

type Table = Record<string, unknown>;

const MiB = 1024 * 1024;

export async function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): Promise<ServerConfig> {
  const configFile = file ?? env.LOFT_CONFIG;
  const toml: Table = configFile ? (parseToml(await readFile(configFile, 'utf8')) as Table) : {};
  return resolveConfig(toml, env);
}

export function resolveConfig(toml: Table, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const t = new TomlReader(toml);
  const dataDir = path.resolve(env.LOFT_DATA_DIR ?? t.str('data_dir', './data'));
  const listen = parseListen(env.LOFT_LISTEN ?? t.str('listen', '0.0.0.0:8080'));
  const db = t.table('database');
  const st = t.table('storage');
  const ch = t.table('chunking');
  const co = t.table('compression');
  const au = t.table('auth');
  const gc = t.table('gc');
  const me = t.table('metrics');
  const li = t.table('limits');
  const up = t.table('upstream');
  const storageType = env.LOFT_STORAGE_TYPE ?? st.str('type', 'local');
  let storage: StorageConfig;
  if (storageType === 'local') {
    storage = { type: 'local', path: path.resolve(env.LOFT_STORAGE_PATH ?? st.str('path', path.join(dataDir, 'storage'))) };
  } else if (storageType === 's3') {
    storage = {
      type: 's3',
      bucket: env.LOFT_S3_BUCKET ?? st.str('bucket'),
      region: env.LOFT_S3_REGION ?? st.str('region', 'us-east-1'),
      endpoint: env.LOFT_S3_ENDPOINT ?? st.optStr('endpoint'),
      prefix: st.optStr('prefix'),
      accessKeyId: env.LOFT_S3_ACCESS_KEY_ID ?? st.optStr('access_key_id'),
      secretAccessKey: env.LOFT_S3_SECRET_ACCESS_KEY ?? st.optStr('secret_access_key'),
      redirect: st.bool('redirect', false),
      presignExpiry: st.num('presign_expiry_seconds', 300),
    };
  } else {
    throw new Error(`config: storage.type must be "local" or "s3", not "${storageType}"`);
  }
  const algorithm = (env.LOFT_TOKEN_ALGORITHM ?? au.str('algorithm', 'HS256')) as ServerConfig['auth']['algorithm'];
  if (!['HS256', 'RS256', 'EdDSA'].includes(algorithm)) {
    throw new Error(`config: auth.algorithm must be HS256, RS256 or EdDSA, not "${algorithm}"`);
  }
  return {
    listen,
    dataDir,
    publicUrl: env.LOFT_PUBLIC_URL ?? t.optStr('public_url'),
    logLevel: env.LOFT_LOG_LEVEL ?? t.str('log_level', 'info'),
    accessLog: parseAccessLog(env.LOFT_ACCESS_LOG ?? t.str('access_log', 'info')),
    defaultCache: env.LOFT_DEFAULT_CACHE ?? t.str('default_cache', 'main'),
    keyNamePrefix: t.str('key_name_prefix', 'loft'),
    maxNarSize: t.num('max_nar_size', 16 * 1024 * MiB),
    maxChunkRequestBytes: t.num('max_chunk_request_bytes', 32 * MiB),
    maxMetadataBytes: t.num('max_metadata_bytes', 1 * MiB),
    bodyIdleTimeoutMs: t.num('body_idle_timeout_ms', 30_000),
    minBodyRate: t.num('min_body_rate', 1024),
    headersTimeoutMs: t.num('headers_timeout_ms', 30_000),
    requestTimeoutMs: t.num('request_timeout_ms', 2 * 3600_000),
    database: {
      url: env.LOFT_DATABASE_URL ?? db.str('url', `sqlite:${path.join(dataDir, 'loft.db')}`),
      poolSize: db.num('pool_size', 10),
      statementTimeoutMs: db.num('statement_timeout_ms', 30_000),
    },
    storage,
    packs: { targetSize: st.num('pack_target_size', 32 * MiB) },
    chunking: {
      minSize: ch.num('min_size', 16 * 1024),
      avgSize: ch.num('avg_size', 64 * 1024),
      maxSize: ch.num('max_size', 256 * 1024),
    },
    compression: { level: co.num('level', 3), threads: co.num('threads', 0) },
    auth: {
      adminToken: env.LOFT_ADMIN_TOKEN ?? au.optStr('admin_token'),
      algorithm,
      hs256Secret: env.LOFT_TOKEN_HS256_SECRET ?? au.optStr('hs256_secret'),
      privateKeyFile: env.LOFT_TOKEN_PRIVATE_KEY_FILE ?? au.optStr('private_key_file'),
      publicKeyFile: env.LOFT_TOKEN_PUBLIC_KEY_FILE ?? au.optStr('public_key_file'),
      issuer: au.optStr('issuer'),
      audience: au.optStr('audience'),
      revocationTtlMs: au.num('revocation_ttl_ms', 5000),
      maxTokenValiditySeconds: configDuration('auth.max_token_validity', env.LOFT_MAX_TOKEN_VALIDITY ?? au.str('max_token_validity', '1y')),
    },
    gc: {
      intervalSeconds: gc.num('interval_seconds', 3600),
      defaultRetentionSeconds: gc.num('default_retention_seconds', 0),
      stagingGraceSeconds: gc.num('staging_grace_seconds', 24 * 3600),
      statementTimeoutMs: gc.num('statement_timeout_ms', 30 * 60_000),
      compactBelow: gc.num('compact_below', 0.5),
      accessFlushSeconds: gc.num('access_flush_seconds', 15),
      upstreamRetentionSeconds: gc.num('upstream_retention_seconds', 30 * 24 * 3600),
    },
    upstream: {
      timeoutMs: up.num('timeout_ms', 10_000),
      maxConcurrency: Math.max(1, up.num('max_concurrency', 16)),
      negativeTtlSeconds: up.num('negative_ttl_seconds', 300),
      positiveTtlSeconds: up.num('positive_ttl_seconds', 3600),
    },
    metrics: {
      token: env.LOFT_METRICS_TOKEN ?? me.optStr('token'),
      historyFlushSeconds: me.num('history_flush_seconds', 10),
      historyDays: me.num('history_days', 90),
    },
    declaredCaches: declaredCaches(t, env, env.LOFT_DEFAULT_CACHE ?? t.str('default_cache', 'main')),
    limits: {
      maxConcurrentPushesPerToken: li.num('max_concurrent_pushes_per_token', 32),
      maxExpansionRatio: li.num('max_expansion_ratio', 1000),
      maxNarSizePerCache: li.table('max_nar_size_per_cache').numbers(),
    },
  };
}

const ACCESS_LOG_LEVELS = ['off', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'];

function parseAccessLog(s: string): string {
  if (!ACCESS_LOG_LEVELS.includes(s)) throw new Error(`config: access_log must be one of ${ACCESS_LOG_LEVELS.join(', ')}, not "${s}"`);
  return s;
}

function declaredCaches(t: TomlReader, env: NodeJS.ProcessEnv, defaultCache: string): DeclaredCache[] {
  const tables = t.table('caches');
  const out = new Map<string, DeclaredCache>();
  const envKey = (name: string, where: string): KeySource => {
    const text = env[name];
    if (text === undefined) throw new Error(`config: ${where} names the environment variable ${name}, which is not set`);
    return { env: name, text };
  };
  for (const name of tables.keys()) {
    if (!isValidCacheName(name)) throw new Error(`config: [caches.${name}]: ${invalidCacheNameMessage(name)}`);
    const c = tables.table(name);
    const file = c.optStr('signing_key_file');
    const envName = c.optStr('signing_key_env');
    if (file !== undefined && envName !== undefined) {
      throw new Error(`config: [caches.${name}] takes signing_key_file or signing_key_env, not both`);
    }
    out.set(name, {
      name,
      isPublic: c.bool('public', name === defaultCache),
      signingKeys: file !== undefined ? { file: path.resolve(file) } : envName !== undefined ? envKey(envName, `caches.${name}.signing_key_env`) : undefined,
    });
  }
  // Container platforms inject secrets as env vars or files: the default cache's keys need no config file.
  const defaultKeys = env.LOFT_SIGNING_KEY_FILE
    ? { file: path.resolve(env.LOFT_SIGNING_KEY_FILE) }
    : env.LOFT_SIGNING_KEY !== undefined
      ? envKey('LOFT_SIGNING_KEY', 'LOFT_SIGNING_KEY')
      : undefined;
  if (defaultKeys) {
    if (!defaultCache) throw new Error('config: LOFT_SIGNING_KEY / LOFT_SIGNING_KEY_FILE need a default_cache to apply to');
    out.set(defaultCache, { ...(out.get(defaultCache) ?? { name: defaultCache, isPublic: true }), signingKeys: defaultKeys });
  }
  return [...out.values()];
}

function configDuration(key: string, value: string): number {
  try {
    return parseDuration(value);
  } catch (e) {
    throw new Error(`config: ${key}: ${(e as Error).message}`);
  }
}

function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(s);
  if (!m) throw new Error(`config: listen must be HOST:PORT, not "${s}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) };
}

/** Typed access to a TOML table with clear errors naming the key. */
class TomlReader {
  constructor(
    private readonly t: Table,
    private readonly prefix = '',
  ) {}
  private get(key: string): unknown {
    return this.t[key];
  }
  keys(): string[] {
    return Object.keys(this.t);
  }
  table(key: string): TomlReader {
    const v = this.get(key) ?? {};
    if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`config: [${this.prefix}${key}] must be a table`);
    return new TomlReader(v as Table, `${this.prefix}${key}.`);
  }
  str(key: string, dflt?: string): string {
    const v = this.get(key) ?? dflt;
    if (typeof v !== 'string') throw new Error(`config: ${this.prefix}${key} must be a string`);
    return v;
  }
  optStr(key: string): string | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new Error(`config: ${this.prefix}${key} must be a string`);
    return v;
  }
  num(key: string, dflt: number): number {
    const v = this.get(key) ?? dflt;
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) {
      throw new Error(`config: ${this.prefix}${key} must be a non-negative number`);
    }
    return n;
  }
  /** Every key of the table, each a non-negative number. */
  numbers(): Record<string, number> {
    return Object.fromEntries(Object.keys(this.t).map((k) => [k, this.num(k, 0)]));
  }
  bool(key: string, dflt: boolean): boolean {
    const v = this.get(key) ?? dflt;
    if (typeof v !== 'boolean') throw new Error(`config: ${this.prefix}${key} must be true or false`);
    return v;
  }
}
