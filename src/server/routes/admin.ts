import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';
import { countDeleted, gcOnce } from '../jobs.ts';

/** Operator actions (admin token). */
export function adminRoutes(app: FastifyInstance, s: Services): void {
  /** Runs one garbage-collection pass now and reports what it removed. */
  app.post('/_api/v1/gc', async (req) => {
    const admin = await s.access.requireAdmin(req);
    const report = await gcOnce(s);
    countDeleted(s, report);
    req.log.info({ sub: admin.sub, ...report }, 'garbage collection run on request');
    return report;
  });
}
