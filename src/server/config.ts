import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import type { ChunkingParams } from '../chunking/fastcdc.ts';
import type { StorageConfig } from '../storage/index.ts';

/** Every key, its default and its env override are documented in docs/config.md. */
export interface ServerConfig {
  listen: { host: string; port: number };
  dataDir: string;
  /** Base URL clients reach the server at (printed, and used in the cache config API). */
  publicUrl?: string;
  logLevel: string;
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
  database: { url: string; poolSize: number; statementTimeoutMs: number };
  storage: StorageConfig;
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
  };
  gc: { intervalSeconds: number; defaultRetentionSeconds: number; stagingGraceSeconds: number; upstreamRetentionSeconds: number };
  /** Pull-through toward each upstream of a cache (docs/config.md, [upstream]). */
  upstream: { timeoutMs: number; maxConcurrency: number; negativeTtlSeconds: number; positiveTtlSeconds: number };
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
    defaultCache: env.LOFT_DEFAULT_CACHE ?? t.str('default_cache', 'main'),
    keyNamePrefix: t.str('key_name_prefix', 'loft'),
    maxNarSize: t.num('max_nar_size', 64 * 1024 * MiB),
    maxChunkRequestBytes: t.num('max_chunk_request_bytes', 32 * MiB),
    maxMetadataBytes: t.num('max_metadata_bytes', 1 * MiB),
    bodyIdleTimeoutMs: t.num('body_idle_timeout_ms', 30_000),
    database: {
      url: env.LOFT_DATABASE_URL ?? db.str('url', `sqlite:${path.join(dataDir, 'loft.db')}`),
      poolSize: db.num('pool_size', 10),
      statementTimeoutMs: db.num('statement_timeout_ms', 30_000),
    },
    storage,
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
    },
    gc: {
      intervalSeconds: gc.num('interval_seconds', 3600),
      defaultRetentionSeconds: gc.num('default_retention_seconds', 0),
      stagingGraceSeconds: gc.num('staging_grace_seconds', 24 * 3600),
      upstreamRetentionSeconds: gc.num('upstream_retention_seconds', 30 * 24 * 3600),
    },
    upstream: {
      timeoutMs: up.num('timeout_ms', 10_000),
      maxConcurrency: Math.max(1, up.num('max_concurrency', 16)),
      negativeTtlSeconds: up.num('negative_ttl_seconds', 300),
      positiveTtlSeconds: up.num('positive_ttl_seconds', 3600),
    },
  };
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
  bool(key: string, dflt: boolean): boolean {
    const v = this.get(key) ?? dflt;
    if (typeof v !== 'boolean') throw new Error(`config: ${this.prefix}${key} must be true or false`);
    return v;
  }
}
