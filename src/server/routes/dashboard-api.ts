import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';
import type { WhoAmI } from '../../api/v1.ts';
import { cacheHistory, cachePushes, cacheSummaries, searchPaths } from '../../core/dashboard.ts';
import { recentGcHistory } from '../../core/gc-history.ts';
import { badRequest } from '../../core/errors.ts';

type CacheParams = { cache: string };
const MAX_HOURS = 24 * 90;
const HOUR_MS = 3600_000;

/** Bounded integer query parameter. */
function intParam(v: string | undefined, name: string, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw badRequest(`${name} must be an integer from 1 to ${max}, not '${v}'`);
  return n;
}

/** The JSON the dashboard's pages read (docs/api.md); each call checks the caller's token like any API call. */
export function dashboardApiRoutes(app: FastifyInstance, s: Services): void {
  const find = (name: string) => s.caches.find(name);

  app.get('/_api/v1/whoami', async (req): Promise<WhoAmI> => {
    const p = await s.access.principalOf(req);
    return {
      sub: p.sub,
      anonymous: p.isAnonymous,
      admin: p.isAdmin,
      expires_at: p.isAnonymous ? null : p.expiresAt.toISOString(),
    };
  });

  /** The overview: every cache the caller may pull, with its size, dedup saving, hit rate and last push. */
  app.get('/_api/v1/dashboard/caches', async (req) => {
    const principal = await s.access.principalOf(req);
    const visible = (await s.caches.list()).filter((c) => c.is_public === 1 || principal.can(c.name, 'pull'));
    return { caches: await cacheSummaries(s.kysely, visible) };
  });

  app.get<{ Params: CacheParams; Querystring: { hours?: string } }>('/_api/v1/caches/:cache/history', async (req) => {
    const { cache } = await s.access.requireOnCache(req, req.params.cache, 'pull', find);
    const hours = intParam(req.query.hours, 'hours', 48, MAX_HOURS);
    return { cache: cache.name, hours: await cacheHistory(s.kysely, cache.id, hours) };
  });

  app.get<{ Params: CacheParams; Querystring: { limit?: string } }>('/_api/v1/caches/:cache/pushes', async (req) => {
    const { cache } = await s.access.requireOnCache(req, req.params.cache, 'pull', find);
    return { cache: cache.name, pushes: await cachePushes(s.kysely, cache.id, intParam(req.query.limit, 'limit', 20, 500)) };
  });

  app.get<{ Params: CacheParams; Querystring: { q?: string; limit?: string } }>('/_api/v1/caches/:cache/search', async (req) => {
    const { cache } = await s.access.requireOnCache(req, req.params.cache, 'pull', find);
    const q = (req.query.q ?? '').trim();
    if (q.length === 0 || q.length > 211) throw badRequest('q must be 1 to 211 characters of a store path name or hash');
    return { cache: cache.name, paths: await searchPaths(s.kysely, cache.id, q, intParam(req.query.limit, 'limit', 50, 500)) };
  });

  /** Server-wide GC per hour (admins only: it spans every cache). */
  app.get<{ Querystring: { hours?: string } }>('/_api/v1/gc/history', async (req) => {
    await s.access.requireAdmin(req);
    const hours = intParam(req.query.hours, 'hours', 24 * 7, MAX_HOURS);
    return { hours: await recentGcHistory(s.kysely, Date.now() - hours * HOUR_MS) };
  });
}
