import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';
import { invalidCacheNameMessage, type CacheSettings } from '../../core/caches.ts';
import type { CacheConfig, CacheSettingsBody } from '../../api/v1.ts';
import type { CacheRow } from '../../db/schema.ts';
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
  },
} as const;

function cacheConfig(c: CacheRow, baseUrl: string): CacheConfig {
  return {
    name: c.name,
    public_key: c.public_key,
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
      if (req.body.regenerate_keypair !== undefined) throw badRequest('regenerate_keypair applies to PATCH only');
      const cache = await s.caches.create(req.params.cache, settingsOf(req.body ?? {}));
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
      const cache = await s.caches.configure(req.params.cache, { ...settingsOf(b), regenerateKey: b.regenerate_keypair });
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
