import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';
import { countCaches, storageStats } from '../../db/repos/stats.ts';

/** Storage accounting: logical NAR bytes against the bytes the deduplicated chunks take. */
export function statsRoutes(app: FastifyInstance, s: Services): void {
  const find = (name: string) => s.caches.find(name);

  app.get<{ Params: { cache: string } }>('/_api/v1/caches/:cache/stats', async (req) => {
    const { cache } = await s.access.requireOnCache(req, req.params.cache, 'pull', find);
    return { cache: cache.name, ...(await storageStats(s.kysely, cache.id)) };
  });

  app.get('/_api/v1/stats', async (req) => {
    await s.access.requireAdmin(req);
    const [stats, caches] = await Promise.all([storageStats(s.kysely), countCaches(s.kysely)]);
    return { caches, ...stats };
  });
}
