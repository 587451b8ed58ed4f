import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';
import type { GcPassesResponse, GcRunBody } from '../../api/v1.ts';
import { listGcPasses } from '../../db/repos/gc-passes.ts';
import { gcOnce } from '../jobs.ts';

const MAX_PASSES = 100;

/** Operator actions: garbage collection on request, and its record. */
export function adminRoutes(app: FastifyInstance, s: Services): void {
  const find = (name: string) => s.caches.find(name);

  /**
   * Runs one garbage-collection pass now and reports what it removed (or, as a dry run, what it
   * would). Every cache needs an admin token; one cache needs `delete` on it.
   */
  app.post<{ Body: GcRunBody | undefined }>(
    '/_api/v1/gc',
    {
      schema: {
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: { cache: { type: 'string' }, dry_run: { type: 'boolean' } },
        },
      },
    },
    async (req) => {
      const body = req.body ?? {};
      const { cache, principal } =
        body.cache === undefined
          ? { cache: undefined, principal: await s.access.requireAdmin(req) }
          : await s.access.requireOnCache(req, body.cache, 'delete', find);
      req.log.info({ sub: principal.sub, cache: cache?.name ?? '*', dryRun: body.dry_run === true }, 'garbage collection requested');
      return gcOnce(s, req.log, { trigger: 'api', cache, dryRun: body.dry_run });
    },
  );

  app.get<{ Querystring: { limit?: number } }>(
    '/_api/v1/gc/passes',
    { schema: { querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: MAX_PASSES } } } } },
    async (req): Promise<GcPassesResponse> => {
      await s.access.requireAdmin(req);
      const rows = await listGcPasses(s.kysely, req.query.limit ?? 20);
      return {
        passes: rows.map((r) => ({
          id: Number(r.id),
          started_at: new Date(r.started_at).toISOString(),
          duration_ms: r.duration_ms,
          trigger: r.trigger === 'timer' ? 'timer' : 'api',
          scope: r.scope,
          paths: r.paths,
          nars: r.nars,
          chunks: r.chunks,
          bytes_freed: r.bytes_freed,
        })),
      };
    },
  );
}
