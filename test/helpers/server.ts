import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/server/app.ts';
import { resolveConfig, type ServerConfig } from '../../src/server/config.ts';
import { createServices, type Services } from '../../src/server/services.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import type { StorageConfig } from '../../src/storage/index.ts';
import { freshDatabase, type DbKind } from './databases.ts';
import { sharedS3Storage } from './s3rver.ts';
import { makeTempDir } from './tmp.ts';

export interface TestServer {
  url: string;
  /** The root token (all permissions on every cache). */
  adminToken: string;
  services: Services;
  app: FastifyInstance;
  config: ServerConfig;
  /** fetch against the server, with an optional token sent as Bearer. */
  fetch(path: string, init?: RequestInit & { token?: string }): Promise<Response>;
  /** Creates a cache through the API and returns its public key. */
  createCache(name: string, settings?: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  db: DbKind;
  /** Default: local disk with SQLite, S3 (a shared s3rver) with PostgreSQL. */
  storage?: 'local' | 's3';
  /** TOML-shaped overrides, merged over the test defaults. */
  toml?: Record<string, unknown>;
  /** Runs on the fresh database and storage before the server migrates and starts (e.g. to write old-layout data). */
  prepare?: (databaseUrl: string, storage: StorageConfig) => Promise<void>;
}

/** A real Loft server on 127.0.0.1 with a fresh database and storage, torn down by close(). */
export async function startTestServer(opts: TestServerOptions): Promise<TestServer> {
  const tmp = await makeTempDir('loft-test-');
  const database = await freshDatabase(opts.db, tmp.path);
  // PostgreSQL runs with S3 unless told otherwise, so every suite covers both production pieces.
  const storageKind = opts.storage ?? (opts.db === 'postgres' ? 's3' : 'local');
  const adminToken = `root-${randomBytes(12).toString('hex')}`;
  const storage: StorageConfig = storageKind === 's3' ? await sharedS3Storage() : { type: 'local', path: `${tmp.path}/storage` };
  const base = resolveConfig(
    {
      data_dir: tmp.path,
      default_cache: '',
      database: { url: database.url, pool_size: 4 },
      auth: { admin_token: adminToken, hs256_secret: randomBytes(32).toString('base64'), revocation_ttl_ms: 200 },
      compression: { threads: 2 },
      ...opts.toml,
    },
    {},
  );
  const config: ServerConfig = { ...base, storage };
  await opts.prepare?.(database.url, storage);
  const services = await createServices(config);
  await migrateToLatest(services.db);
  const app = await buildApp(services, { logger: process.env.LOFT_TEST_LOG ? { level: 'info' } : false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const doFetch = (p: string, init: RequestInit & { token?: string } = {}) => {
    const headers = new Headers(init.headers);
    if (init.token) headers.set('authorization', `Bearer ${init.token}`);
    return fetch(url + p, { ...init, headers });
  };
  return {
    url,
    adminToken,
    services,
    app,
    config,
    fetch: doFetch,
    async createCache(name, settings = {}) {
      const res = await doFetch(`/_api/v1/cache-config/${name}`, {
        method: 'POST',
        token: adminToken,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(settings),
      });
      if (res.status !== 201) throw new Error(`creating cache ${name}: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { public_key: string }).public_key;
    },
    async close() {
      await app.close();
      await services.close();
      await database.drop();
      await tmp.cleanup();
    },
  };
}
