import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';
import { isValidStorePathHash } from '../../nix/store-path.ts';
import { findObject } from '../../db/repos/objects.ts';
import { deletePaths, narSharing } from '../../db/repos/paths.ts';
import { badRequest, conflict, notFound } from '../../core/errors.ts';
import { closureOf, collectableAfter, referrersOf } from '../../core/dashboard.ts';
import type { DeletePathsResult } from '../../api/v1.ts';

/** Per-path inspection and deletion. */
export function pathRoutes(app: FastifyInstance, s: Services): void {
  const find = (name: string) => s.caches.find(name);

  app.get<{ Params: { cache: string; hash: string } }>('/_api/v1/path-info/:cache/:hash', async (req) => {
    const { cache } = await s.access.requireOnCache(req, req.params.cache, 'pull', find);
    if (!isValidStorePathHash(req.params.hash)) throw badRequest(`invalid store path hash '${req.params.hash}'`);
    const obj = await findObject(s.kysely, cache.id, req.params.hash);
    if (!obj) throw notFound(`${req.params.hash}: no such path in cache '${cache.name}'`);
    const [sharing, referrers, closure] = await Promise.all([
      narSharing(s.kysely, obj.nar_id),
      referrersOf(s.kysely, cache.id, obj.store_path_hash),
      closureOf(s.kysely, cache.id, obj.store_path_hash),
    ]);
    return {
      store_path: obj.store_path,
      nar_hash: obj.nar.nar_hash,
      nar_size: obj.nar.nar_size,
      file_hash: obj.nar.file_hash,
      file_size: obj.nar.file_size,
      references: JSON.parse(obj.references),
      deriver: obj.deriver,
      ca: obj.ca,
      sigs: JSON.parse(obj.client_sigs),
      created_by: obj.created_by,
      created_at: new Date(obj.created_at).toISOString(),
      last_accessed_at: new Date(obj.last_accessed_at).toISOString(),
      chunks: obj.nar.chunk_count,
      /** Uncompressed bytes of this NAR's chunks that other NARs share. */
      shared_bytes: sharing.sharedBytes,
      dedup_ratio: obj.nar.nar_size > 0 ? sharing.sharedBytes / obj.nar.nar_size : 0,
      /** Paths of this cache that refer to this one. */
      referrers,
      /** The closure within this cache; `missing` counts references the cache does not hold. */
      closure,
      /** When GC may remove it if unused until then and no kept path refers to it; null = kept forever. */
      collectable_after: collectableAfter(cache, obj.last_accessed_at, s.config.gc.defaultRetentionSeconds),
    };
  });

  app.post<{ Body: { cache: string; store_path_hashes: string[]; force?: boolean; cascade?: boolean } }>(
    '/_api/v1/delete-paths',
    {
      schema: {
        body: {
          type: 'object',
          required: ['cache', 'store_path_hashes'],
          additionalProperties: false,
          properties: {
            cache: { type: 'string' },
            store_path_hashes: { type: 'array', minItems: 1, maxItems: 10_000, items: { type: 'string' } },
            force: { type: 'boolean' },
            cascade: { type: 'boolean' },
          },
        },
      },
    },
    async (req): Promise<DeletePathsResult> => {
      const { cache, principal } = await s.access.requireOnCache(req, req.body.cache, 'delete', find);
      const bad = req.body.store_path_hashes.find((h) => !isValidStorePathHash(h));
      if (bad !== undefined) throw badRequest(`invalid store path hash '${bad}'`);
      const result = await deletePaths(s.kysely, cache.id, req.body.store_path_hashes, {
        cascade: req.body.cascade ?? false,
        force: req.body.force ?? false,
      });
      if ('referrers' in result) {
        throw badRequest(
          `refusing to break closures: still referenced by ${listed(result.referrers)} ` +
            '(delete those too, or pass cascade to delete everything that refers to these paths)',
        );
      }
      if ('pinnedBy' in result) throw conflict(`refusing to delete pinned paths: remove the pin${result.pinnedBy.length > 1 ? 's' : ''} ${listed(result.pinnedBy)} first`);
      s.narinfoCache.forgetCache(cache.id);
      req.log.info({ sub: principal.sub, cache: cache.name, deleted: result.deleted, cascaded: result.cascaded.length }, 'paths deleted');
      return result;
    },
  );
}

function listed(items: string[]): string {
  return `${items.slice(0, 5).join(', ')}${items.length > 5 ? ` and ${items.length - 5} more` : ''}`;
}
