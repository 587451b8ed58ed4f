import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';
import { invalidCacheNameMessage, type Cache, type CacheSettings, type ConfigureKeys } from '../../core/caches.ts';
import { parseSecretKeys } from '../../core/cache-keys.ts';
import type { CacheConfig, CacheSettingsBody } from '../../api/v1.ts';
import { isValidCacheName } from '../../token/index.ts';
import { badRequest } from '../../core/errors.ts';
import { upstreamsForApi } from '../../core/upstreams.ts';

type Params = { cache: string };


const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    is_public: { type: 'boolean' },
    priority: { type: 'integer' },
    store_dir: { type: 'string', maxLength: 4096 },
    upstream_cache_key_names: { type: 'array', items: { type: 'string', maxLength: 256 }, maxItems: 64 },
    retention_period: { type: ['integer', 'null'], minimum: 0 },
    upstreams: { type: 'array', maxItems: 16, items: { type: 'object' } },
    upstream_retention_period: { type: ['integer', 'null'], minimum: 0 },
    regenerate_keypair: { type: 'boolean' },
    signing_key: { type: 'string', maxLength: 16384 },
    add_signing_key: { type: 'string', maxLength: 16384 },
    generate_signing_key: { type: 'boolean' },
    retire_signing_key: { type: 'string', maxLength: 256 },
  },
} as const;

const PATCH_ONLY = ['regenerate_keypair', 'add_signing_key', 'generate_signing_key', 'retire_signing_key'] as const;

function cacheConfig(c: Cache, baseUrl: string): CacheConfig {
  return {
    name: c.name,
    public_key: c.public_key,
    signing_keys: c.keys.map((k) => ({
      name: k.name,
      public_key: k.public_key,
      state: k.state,
      created_at: new Date(k.created_at).toISOString(),
      retired_at: k.retired_at === null ? null : new Date(k.retired_at).toISOString(),
    })),
    is_public: c.is_public === 1,
    priority: c.priority,
    store_dir: c.store_dir,
    upstream_cache_key_names: JSON.parse(c.upstream_key_names) as string[],
    retention_period: c.retention_seconds,
    upstreams: upstreamsForApi(c.upstreams),
    upstream_retention_period: c.upstream_retention_seconds,
    created_at: new Date(c.created_at).toISOString(),
    url: `${baseUrl}/${c.name}`,
  };
}

function settingsOf(b: CacheSettingsBody): CacheSettings {
  return {
    isPublic: b.is_public,
    priority: b.priority,
    storeDir: b.store_dir,
    upstreamKeyNames: b.upstream_cache_key_names,
    retentionSeconds: b.retention_period,
    upstreams: b.upstreams,
    upstreamRetentionSeconds: b.upstream_retention_period,
  };
}

/** The key fields of a body; secrets are parsed here so a malformed one is a 400 that names the field. */
function keysOf(b: CacheSettingsBody): ConfigureKeys {
  return {
    replaceWith: b.signing_key === undefined ? undefined : parseSecretKeys(b.signing_key, 'signing_key'),
    add: b.add_signing_key === undefined ? undefined : parseSecretKeys(b.add_signing_key, 'add_signing_key'),
    generateKey: b.generate_signing_key,
    retire: b.retire_signing_key === undefined ? undefined : [b.retire_signing_key],
    regenerateKey: b.regenerate_keypair,
  };
}

export function cacheRoutes(app: FastifyInstance, s: Services): void {
  const find = (name: string) => s.caches.find(name);
  const publicUrl = (req: { protocol: string; host: string }) => s.config.publicUrl ?? `${req.protocol}://${req.host}`;

  /** Caches the caller can see: public ones and those its token grants anything on. */
  app.get('/_api/v1/caches', async (req) => {
    const principal = await s.access.principalOf(req);
    const all = await s.caches.list();
    return {
      caches: all
        .filter((c) => c.is_public === 1 || principal.hasAnyOn(c.name))
        .map((c) => cacheConfig(c, publicUrl(req))),
    };
  });

  app.get<{ Params: Params }>('/_api/v1/cache-config/:cache', async (req) => {
    const { cache } = await s.access.requireOnCache(req, req.params.cache, 'pull', find);
    return cacheConfig(cache, publicUrl(req));
  });

  app.post<{ Params: Params; Body: CacheSettingsBody }>(
    '/_api/v1/cache-config/:cache',
    { schema: { body: settingsSchema } },
    async (req, reply) => {
      // A malformed name is a client error whoever asks (tokens grant nothing on invalid names).
      if (!isValidCacheName(req.params.cache)) throw badRequest(invalidCacheNameMessage(req.params.cache));
      const principal = await s.access.requireOnName(req, req.params.cache, 'create_cache');
      const body = req.body ?? {};
      for (const f of PATCH_ONLY) if (body[f] !== undefined) throw badRequest(`${f} applies to PATCH only`);
      const keys = keysOf(body).replaceWith;
      const cache = await s.caches.create(req.params.cache, settingsOf(body), keys);
      req.log.info({ sub: principal.sub, cache: cache.name }, 'cache created');
      return reply.code(201).send(cacheConfig(cache, publicUrl(req)));
    },
  );

  app.patch<{ Params: Params; Body: CacheSettingsBody }>(
    '/_api/v1/cache-config/:cache',
    { schema: { body: settingsSchema } },
    async (req) => {
      const b = req.body ?? {};
      const { principal } = await s.access.requireOnCache(req, req.params.cache, 'configure_cache', find);
      if (b.retention_period !== undefined || b.upstream_retention_period !== undefined) {
        await s.access.requireOnCache(req, req.params.cache, 'configure_retention', find);
      }
      const cache = await s.caches.configure(req.params.cache, settingsOf(b), keysOf(b));
      s.narinfoCache.forgetCache(cache.id);
      req.log.info({ sub: principal.sub, cache: cache.name, changed: Object.keys(b) }, 'cache configured');
      return cacheConfig(cache, publicUrl(req));
    },
  );

  app.delete<{ Params: Params }>('/_api/v1/cache-config/:cache', async (req, reply) => {
    const { cache, principal } = await s.access.requireOnCache(req, req.params.cache, 'destroy_cache', find);
    await s.caches.destroy(cache.name);
    req.log.info({ sub: principal.sub, cache: cache.name }, 'cache destroyed');
    return reply.code(204).send();
  });
}
