import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';
import type { PinBody, PinsResponse } from '../../api/v1.ts';
import { pinPath, pinsOf, unpin } from '../../core/pins.ts';

type Params = { cache: string; name: string };

/** Named pins: what they point at (and its closure) is never garbage-collected. */
export function pinRoutes(app: FastifyInstance, s: Services): void {
  const find = (name: string) => s.caches.find(name);

  app.get<{ Params: { cache: string } }>('/_api/v1/caches/:cache/pins', async (req): Promise<PinsResponse> => {
    const { cache } = await s.access.requireOnCache(req, req.params.cache, 'pull', find);
    return { pins: await pinsOf(s.kysely, cache) };
  });

  app.put<{ Params: Params; Body: PinBody }>(
    '/_api/v1/caches/:cache/pins/:name',
    {
      schema: {
        body: {
          type: 'object',
          required: ['store_path'],
          additionalProperties: false,
          properties: {
            store_path: { type: 'string', maxLength: 4096 },
            keep_revisions: { type: ['integer', 'null'] },
            keep_days: { type: ['integer', 'null'] },
          },
        },
      },
    },
    async (req) => {
      const { cache, principal } = await s.access.requireOnCache(req, req.params.cache, 'pin', find);
      const pin = await pinPath(s.kysely, cache, req.params.name, req.body, principal.sub);
      req.log.info({ sub: principal.sub, cache: cache.name, pin: pin.name, path: pin.store_path }, 'path pinned');
      return pin;
    },
  );

  app.delete<{ Params: Params }>('/_api/v1/caches/:cache/pins/:name', async (req, reply) => {
    const { cache, principal } = await s.access.requireOnCache(req, req.params.cache, 'pin', find);
    await unpin(s.kysely, cache, req.params.name);
    req.log.info({ sub: principal.sub, cache: cache.name, pin: req.params.name }, 'pin removed');
    return reply.code(204).send();
  });
}
