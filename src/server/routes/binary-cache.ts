import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services.ts';
import { formatCacheInfo, parseCacheInfo } from '../../nix/cache-info.ts';
import { isValidStorePathHash } from '../../nix/store-path.ts';
import { findObject } from '../../db/repos/objects.ts';
import { findNarChunks, findNarInCache, findNarListing, findNarUpload } from '../../db/repos/nars.ts';
import { renderNarInfo } from '../../core/narinfo.ts';
import { encodedLength, listStoredNar, openEncodedNar, type NarEncoding } from '../../core/nar-serve.ts';
import { receiveNixNar, receiveNixNarInfo } from '../../core/push.ts';
import { badRequest, notFound } from '../../core/errors.ts';
import type { NarSink } from '../../core/pull-through.ts';
import type { NarRow } from '../../db/schema.ts';
import { bodyStream, readSmallBody, requireBody } from '../body.ts';
import { pathPushed } from '../pushed.ts';

type CacheParams = { cache: string };
type FileParams = { cache: string; file: string };

/**
 * The Nix HTTP binary-cache protocol, per cache: what `nix copy --from/--to`
 * and substitution send (see docs/api.md). GET routes answer HEAD too.
 */
export function binaryCacheRoutes(app: FastifyInstance, s: Services): void {
  const find = (name: string) => s.caches.find(name);
  const pace = s.config;

  app.get<{ Params: CacheParams }>('/:cache/nix-cache-info', async (req, reply) => {
    const { cache } = await s.access.requireOnCache(req, req.params.cache, 'pull', find);
    return reply
      .type('text/x-nix-cache-info')
      .send(formatCacheInfo({ storeDir: cache.store_dir, wantMassQuery: true, priority: cache.priority }));
  });

  // Nix PUTs nix-cache-info before its first upload; accept it when it agrees with the cache.
  app.put<{ Params: CacheParams }>('/:cache/nix-cache-info', async (req, reply) => {
    const { cache } = await s.access.requireOnCache(req, req.params.cache, 'push', find);
    const info = parseCacheInfo(requireBody(await readSmallBody(req, 4096, pace), 'nix-cache-info').toString('utf8'));
    if (info.storeDir !== cache.store_dir) {
      throw badRequest(`this cache holds paths of ${cache.store_dir}, not ${info.storeDir}`);
    }
    return reply.code(204).send();
  });

  app.get<{ Params: FileParams }>('/:cache/:file', async (req, reply) => {
    const { file } = req.params;
    const { cache } = await s.access.requireOnCache(req, req.params.cache, 'pull', find);
    const [hash, ext] = splitFile(file);
    if (ext !== 'narinfo' && ext !== 'ls') throw notFound(`no such file '${file}'`);
    const missing = () => notFound(`${hash}.${ext}: no such path in cache '${cache.name}'`);
    if (ext === 'narinfo') {
      let text = s.narinfoCache.get(cache, hash);
      if (text === undefined) {
        const obj = await findObject(s.kysely, cache.id, hash);
        text = obj ? await renderNarInfo(s.kysely, cache, obj) : await s.pullThrough.narInfo(cache, hash, req.log);
        s.narinfoCache.set(cache, hash, text);
      }
      if (text === null) throw missing();
      s.accessTracker.touchPath(cache.id, hash);
      return reply.type('text/x-nix-narinfo').send(text);
    }
    const obj = await findObject(s.kysely, cache.id, hash);
    if (!obj) throw missing();
    const stored = await findNarListing(s.kysely, obj.nar_id);
    if (stored !== undefined) return reply.type('application/json').send(stored);
    // NARs ingested before listings were stored, or whose listing exceeded the cap.
    return reply.type('application/json').send(await listStoredNar(s.chunkStore, await findNarChunks(s.kysely, obj.nar_id)));
  });

  app.put<{ Params: FileParams }>('/:cache/:file', async (req, reply) => {
    const { file } = req.params;
    const { cache, principal } = await s.access.requireOnCache(req, req.params.cache, 'push', find);
    const [hash, ext] = splitFile(file);
    if (ext === 'ls') {
      // Loft generates listings from the NAR itself; an uploaded one is not needed.
      await readSmallBody(req, s.config.maxMetadataBytes, pace);
      return reply.code(204).send();
    }
    if (ext !== 'narinfo') throw badRequest(`cannot upload '${file}': only <hash>.narinfo, <hash>.ls and nar/* are accepted`);
    const text = requireBody(await readSmallBody(req, s.config.maxMetadataBytes, pace), 'narinfo').toString('utf8');
    const replace = await s.access.replaceRequested(req, cache.name, find);
    const outcome = await receiveNixNarInfo(s.push, cache, hash, text, principal.sub, replace);
    pathPushed(s, req, cache, principal.sub, 'nix-copy', { path: hash, outcome });
    return reply.code(204).header('x-loft-path', outcome).send();
  });

  app.get<{ Params: FileParams }>('/:cache/nar/:file', async (req, reply) => {
    const { cache } = await s.access.requireOnCache(req, req.params.cache, 'pull', find);
    let target = await resolveNarFile(s, cache.id, req.params.file);
    if (!target) {
      const pulled = await s.pullThrough.openNar(cache, req.params.file, req.method === 'HEAD', req.log, liveNarResponse(s, reply));
      if (pulled === 'live') return reply;
      if (pulled && pulled !== 'stored') {
        // HEAD of a file still upstream.
        reply.header('content-type', 'application/x-nix-nar');
        if (pulled.size !== undefined) reply.header('content-length', pulled.size);
        return reply.send(Readable.from([])); // an empty stream keeps the Content-Length
      }
      // The pull-through flow has just stored it (or another replica did).
      if (pulled === 'stored') target = await resolveNarFile(s, cache.id, req.params.file);
    }
    if (!target || (target.uploadOnly && req.method !== 'HEAD')) throw notFound(`no such NAR '${req.params.file}' in cache '${cache.name}'`);
    if (req.method === 'GET') s.accessTracker.touchNar(cache.id, target.nar.id);
    return sendNar(s, req, reply, target.nar, target.encoding);
  });

  app.put<{ Params: FileParams }>('/:cache/nar/:file', async (req, reply) => {
    const { cache, principal } = await s.access.requireOnCache(req, req.params.cache, 'push', find);
    const nar = await receiveNixNar(s.push, cache, req.params.file, bodyStream(req, pace));
    req.log.info({ sub: principal.sub, cache: cache.name, nar: nar.nar_hash, size: nar.nar_size }, 'NAR received');
    return reply.code(201).send();
  });
}

function splitFile(file: string): [string, string] {
  const dot = file.indexOf('.');
  const hash = dot < 0 ? file : file.slice(0, dot);
  const ext = dot < 0 ? '' : file.slice(dot + 1);
  if (!isValidStorePathHash(hash)) {
    throw badRequest(`invalid store path hash '${hash}': expected 32 nix-base32 characters`);
  }
  return [hash, ext];
}

/**
 * A NAR is served as `<filehash>.nar.zst` (what our narinfos name), as `<narhash>.nar`
 * (decompressed), and as `<narhash>.nar.xz`, `.nar.zst` or `.nar.br` (what a pulled-through
 * path's narinfo named before it was ingested: see NarEncoding). A file that `nix copy`
 * uploaded under its own name answers HEAD (so Nix skips re-uploading it) but is not served:
 * its compressed bytes were not kept.
 */
async function resolveNarFile(
  s: Services,
  cacheId: number,
  file: string,
): Promise<{ nar: NarRow; encoding: NarEncoding; uploadOnly?: boolean } | undefined> {
  const m = /^([0-9a-df-np-sv-z]{52})\.nar(?:\.(zst|xz|br))?$/.exec(file);
  if (m) {
    const encoding = ({ zst: 'zstd', xz: 'xz', br: 'br' } as const)[m[2] as 'zst' | 'xz' | 'br'] ?? 'none';
    const nar =
      (encoding === 'zstd' && (await findNarInCache(s.kysely, cacheId, { fileHash: `sha256:${m[1]}` }))) ||
      (await findNarInCache(s.kysely, cacheId, { narHash: `sha256:${m[1]}` }));
    if (nar) return { nar, encoding };
  }
  const uploaded = await findNarUpload(s.kysely, cacheId, file);
  return uploaded ? { nar: uploaded, encoding: 'zstd', uploadOnly: true } : undefined;
}

async function sendNar(s: Services, req: FastifyRequest, reply: FastifyReply, nar: NarRow, encoding: NarEncoding) {
  const length = encodedLength(nar, encoding);
  reply.header('content-type', 'application/x-nix-nar');
  if (length !== undefined) reply.header('content-length', length);
  reply.header('cache-control', 'public, max-age=31536000, immutable');
  // Fastify's HEAD handling keeps our Content-Length only for a stream payload.
  if (req.method === 'HEAD') return reply.send(Readable.from([]));
  const chunks = await findNarChunks(s.kysely, nar.id);
  // A NAR whose frames are one whole pack object is that .nar.zst: let the client fetch it from the bucket.
  const location = encoding === 'zstd' ? await s.chunkStore.redirectUrl(chunks, nar.file_size, presignExpirySeconds(s)) : undefined;
  if (location) {
    reply.removeHeader('content-type').removeHeader('content-length');
    // The URL expires: the redirect itself must not be cached like the immutable body.
    return reply.code(302).header('location', location).header('cache-control', 'no-store').send();
  }
  const body = await openEncodedNar(s.chunkStore, chunks, nar, encoding);
  if (length !== undefined) reply.raw.once('finish', () => s.metrics.bytesServed.inc(length));
  return reply.send(body);
}

/**
 * The response of the request that starts an upstream download: written on the raw response
 * (the reply is hijacked once the first byte comes; the onResponse hooks still run), because
 * each piece's buffer is reused once the socket has taken it, which a piped stream cannot tell.
 */
function liveNarResponse(s: Services, reply: FastifyReply): NarSink {
  const res = reply.raw;
  const pending = new Set<() => void>();
  res.once('close', () => {
    for (const done of [...pending]) done();
  });
  return {
    start(length) {
      reply.hijack();
      const headers: Record<string, string | number> = { 'content-type': 'application/x-nix-nar' };
      if (length !== undefined) {
        headers['content-length'] = length;
        res.once('finish', () => s.metrics.bytesServed.inc(length));
      }
      res.writeHead(200, headers);
    },
    write(piece, done) {
      if (res.destroyed) return done();
      const once = () => pending.delete(once) && done();
      pending.add(once);
      res.write(piece, once);
    },
    end() {
      res.end();
    },
    abort() {
      res.destroy();
    },
  };
}

const DEFAULT_PRESIGN_EXPIRY_SECONDS = 300;

function presignExpirySeconds(s: Services): number {
  return (s.config.storage.type === 's3' && s.config.storage.presignExpiry) || DEFAULT_PRESIGN_EXPIRY_SECONDS;
}
