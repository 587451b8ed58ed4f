import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.ts';
import { findMissingPaths } from '../../db/repos/objects.ts';
import { uploadPath } from '../../core/push.ts';
import { pullableCacheIds } from '../../core/chunk-upload.ts';
import type { PathInfo } from '../../nix/narinfo.ts';
import type { NarInfoJson } from '../../api/v1.ts';
import { badRequest, tooLarge } from '../../core/errors.ts';
import { isValidStorePathHash } from '../../nix/store-path.ts';
import { bodyStream } from '../body.ts';
import { pathPushed } from '../pushed.ts';
import { Readable } from 'node:stream';

const MAX_MISSING_QUERY = 100_000;

export function metadataOf(j: NarInfoJson): PathInfo {
  return {
    storePath: j.store_path,
    narHash: j.nar_hash,
    narSize: j.nar_size,
    references: j.references,
    deriver: j.deriver ?? undefined,
    sigs: j.sigs ?? [],
    ca: j.ca ?? undefined,
  };
}

export function parseNarInfoJson(text: string): NarInfoJson {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw badRequest('path metadata is not valid JSON');
  }
  const o = j as Record<string, unknown>;
  if (typeof o !== 'object' || o === null) throw badRequest('path metadata must be a JSON object');
  for (const k of ['cache', 'store_path', 'nar_hash'] as const) {
    if (typeof o[k] !== 'string') throw badRequest(`path metadata: '${k}' must be a string`);
  }
  if (typeof o.nar_size !== 'number') throw badRequest("path metadata: 'nar_size' must be a number");
  if (!Array.isArray(o.references)) throw badRequest("path metadata: 'references' must be an array");
  return o as unknown as NarInfoJson;
}

export function pushApiRoutes(app: FastifyInstance, s: Services): void {
  const find = (name: string) => s.caches.find(name);

  app.post<{ Body: { cache: string; store_path_hashes: string[] } }>(
    '/_api/v1/get-missing-paths',
    {
      schema: {
        body: {
          type: 'object',
          required: ['cache', 'store_path_hashes'],
          properties: {
            cache: { type: 'string' },
            store_path_hashes: { type: 'array', maxItems: MAX_MISSING_QUERY, items: { type: 'string' } },
          },
        },
      },
      bodyLimit: 8 * 1024 * 1024,
    },
    async (req) => {
      const { cache } = await s.access.requireOnCache(req, req.body.cache, 'push', find);
      const bad = req.body.store_path_hashes.find((h) => !isValidStorePathHash(h));
      if (bad !== undefined) throw badRequest(`invalid store path hash '${bad}'`);
      const missing = await findMissingPaths(s.kysely, cache.id, req.body.store_path_hashes);
      // A path the push will not upload because it is here must outlive the push: it counts as used.
      const absent = new Set(missing);
      for (const h of req.body.store_path_hashes) if (!absent.has(h)) s.accessTracker.touchPath(cache.id, h);
      return { missing_paths: missing };
    },
  );

  app.put('/_api/v1/upload-path', async (req, reply) => {
    const limit = s.config.maxMetadataBytes;
    const header = req.headers['x-loft-nar-info'];
    const preamble = req.headers['x-loft-nar-info-preamble-size'];
    let body = bodyStream(req, s.config);
    let metaText: string;
    if (typeof header === 'string') {
      if (Buffer.byteLength(header) > limit) throw tooLarge(`path metadata of ${Buffer.byteLength(header)} bytes exceeds the ${limit}-byte limit`);
      metaText = header;
    } else if (typeof preamble === 'string') {
      const size = Number(preamble);
      if (!Number.isSafeInteger(size) || size <= 0) throw badRequest('X-Loft-Nar-Info-Preamble-Size must be a positive integer');
      if (size > limit) throw tooLarge(`path metadata of ${size} bytes exceeds the ${limit}-byte limit`);
      const split = await splitPreamble(body, size);
      metaText = split.preamble.toString('utf8');
      body = split.rest;
    } else {
      throw badRequest('missing X-Loft-Nar-Info header (or X-Loft-Nar-Info-Preamble-Size with the metadata first in the body)');
    }
    const j = parseNarInfoJson(metaText);
    const { cache, principal } = await s.access.requireOnCache(req, j.cache, 'push', find);
    const replace = await s.access.replaceRequested(req, j.cache, find);
    const pullable = pullableCacheIds(await s.caches.list(), principal);
    const result = await uploadPath(s.push, cache, pullable, metadataOf(j), body, principal.sub, replace);
    pathPushed(s, req, cache, principal.sub, 'upload-path', { path: j.store_path, ...result });
    return reply.send(result);
  });
}

/** Takes the first `size` bytes off a stream; the rest continues as a stream. */
async function splitPreamble(body: Readable, size: number): Promise<{ preamble: Buffer; rest: Readable }> {
  const it = body[Symbol.asyncIterator]();
  const parts: Buffer[] = [];
  let have = 0;
  let leftover: Buffer | undefined;
  while (have < size) {
    const { value, done } = await it.next();
    if (done) throw badRequest(`body ended inside the ${size}-byte metadata preamble`);
    const buf = value as Buffer;
    const take = Math.min(buf.length, size - have);
    parts.push(buf.subarray(0, take));
    have += take;
    if (take < buf.length) leftover = buf.subarray(take);
  }
  async function* rest(): AsyncGenerator<Buffer> {
    if (leftover) yield leftover;
    for (;;) {
      const { value, done } = await it.next();
      if (done) return;
      yield value as Buffer;
    }
  }
  return { preamble: Buffer.concat(parts), rest: Readable.from(rest(), { objectMode: false }) };
}
