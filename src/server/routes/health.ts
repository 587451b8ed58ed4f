import { sql } from 'kysely';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';

const CHECK_TIMEOUT_MS = 3000;

/** 200 only when both the database and the storage answer; load balancers route on this. */
export function healthRoutes(app: FastifyInstance, s: Services): void {
  app.get('/v1/healthz', async (req, reply) => {
    const [database, storage] = await Promise.all([
      probe(() => sql`select 1`.execute(s.kysely)),
      probe(() => s.blobs.check()),
    ]);
    const ok = database === 'ok' && storage === 'ok';
    if (!ok) req.log.warn({ database, storage }, 'health check failed');
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', database, storage });
  });
}

async function probe(fn: () => Promise<unknown>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return 'ok';
  } catch (e) {
    return `error: ${(e as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
}
