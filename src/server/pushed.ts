import type { FastifyRequest } from 'fastify';
import type { CacheRow } from '../db/schema.ts';
import type { Services } from './services.ts';

/**
 * What every push route does once a path is visible: forget the cache's
 * cached narinfos, count it, and log who pushed it (the audit trail and the dashboard's push log).
 */
export function pathPushed(
  s: Services,
  req: FastifyRequest,
  cache: CacheRow,
  sub: string,
  via: 'nix-copy' | 'upload-path' | 'chunks',
  details: Record<string, unknown>,
): void {
  s.narinfoCache.forgetCache(cache.id);
  s.metrics.pathsPushed.inc({ via });
  s.usage.pushActivity(cache, sub, via, { paths: 1 });
  req.log.info({ sub, cache: cache.name, via, ...details }, 'path pushed');
}
