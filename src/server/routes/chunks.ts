import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../services.ts';
import type { Principal } from '../../token/index.ts';
import {
  commitChunkedNar,
  findMissingChunks,
  MissingChunksError,
  parseChunkHashes,
  pullableCacheIds,
  receiveChunks,
  type ChunkUploadDeps,
} from '../../core/chunk-upload.ts';
import { badRequest, LoftError, tooLarge } from '../../core/errors.ts';
import { bodyStream } from '../body.ts';
import { metadataOf, parseNarInfoJson } from './push-api.ts';
import { pathPushed } from '../pushed.ts';

const MAX_MISSING_QUERY = 100_000;
/** A NAR's chunk list: ~67 bytes of JSON per chunk, so about 120 000 chunks (≈ 7.5 GiB at 64 KiB). */
const NAR_COMMIT_BODY_LIMIT = 8 * 1024 * 1024;
const CHUNKS_CONTENT_TYPE = 'application/x-loft-chunks';
const SERVER_VERSION = process.env.npm_package_version ?? '0.1.0';

/** The negotiated chunk upload (docs/api.md#chunk-negotiation). */
export function chunkRoutes(app: FastifyInstance, s: Services): void {
  const find = (name: string) => s.caches.find(name);
  const deps: ChunkUploadDeps = { ...s.push, db: s.kysely, store: s.chunkStore, chunking: s.config.chunking };
  const pullable = async (principal: Principal) => pullableCacheIds(await s.caches.list(), principal);

  app.get('/_api/v1/server-info', async () => ({
    version: SERVER_VERSION,
    chunking: {
      min_size: s.config.chunking.minSize,
      avg_size: s.config.chunking.avgSize,
      max_size: s.config.chunking.maxSize,
    },
    max_chunk_request_bytes: s.config.maxChunkRequestBytes,
    chunk_compression: 'zstd',
  }));

  app.post<{ Body: { cache: string; chunks: string[] } }>(
    '/_api/v1/chunks/missing',
    {
      schema: {
        body: {
          type: 'object',
          required: ['cache', 'chunks'],
          properties: { cache: { type: 'string' }, chunks: { type: 'array', items: { type: 'string' } } },
        },
      },
      bodyLimit: NAR_COMMIT_BODY_LIMIT,
    },
    async (req) => {
      const { cache, principal } = await s.access.requireOnCache(req, req.body.cache, 'push', find);
      const hashes = parseChunkHashes(req.body.chunks, MAX_MISSING_QUERY);
      return { missing: await findMissingChunks(s.kysely, cache, await pullable(principal), hashes) };
    },
  );

  app.post<{ Querystring: { cache?: string } }>('/_api/v1/chunks', async (req) => {
    const limit = s.config.maxChunkRequestBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) throw tooLarge(`chunk upload of ${declared} bytes exceeds the ${limit}-byte limit`);
    if (typeof req.query.cache !== 'string') throw badRequest('missing ?cache=NAME');
    const { cache, principal } = await s.access.requireOnCache(req, req.query.cache, 'push', find);
    const type = req.headers['content-type']?.split(';')[0].trim();
    if (type !== CHUNKS_CONTENT_TYPE) {
      throw new LoftError('unsupported_media', `chunk uploads must be sent as ${CHUNKS_CONTENT_TYPE}, not ${type ?? 'nothing'}`);
    }
    const body = bodyStream(req, s.config);
    const result = await receiveChunks(deps, cache, await pullable(principal), body, limit);
    req.log.info({ sub: principal.sub, cache: cache.name, ...result }, 'chunks received');
    return result;
  });

  app.post('/_api/v1/nar', { bodyLimit: NAR_COMMIT_BODY_LIMIT + s.config.maxMetadataBytes }, async (req, reply) => {
    const j = parseNarInfoJson(jsonText(req));
    const { cache, principal } = await s.access.requireOnCache(req, j.cache, 'push', find);
    const replace = await s.access.replaceRequested(req, j.cache, find);
    const chunks = parseChunkHashes((j as { chunks?: unknown }).chunks, Number.MAX_SAFE_INTEGER);
    try {
      const result = await commitChunkedNar(deps, cache, {
        meta: metadataOf(j),
        chunks,
        pullable: await pullable(principal),
        sub: principal.sub,
        replace,
      });
      pathPushed(s, req, cache, principal.sub, 'chunks', { path: j.store_path, ...result });
      return result;
    } catch (e) {
      // The one error body with an extra field: the client uploads exactly these and commits again.
      if (!(e instanceof MissingChunksError)) throw e;
      req.pushIncomplete = true;
      return reply.code(400).send({ error: 'bad_request', message: e.message, missing: e.missing });
    }
  });
}

/** Fastify has already parsed a JSON body; parseNarInfoJson validates it from text like the header form. */
function jsonText(req: FastifyRequest): string {
  if (req.body === undefined) throw badRequest('expected a JSON body (content-type: application/json)');
  return JSON.stringify(req.body);
}
