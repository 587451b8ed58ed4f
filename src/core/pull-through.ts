import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { Kysely } from 'kysely';
import type { ChunkingParams } from '../chunking/fastcdc.ts';
import type { NixCompression } from '../compression/codecs.ts';
import { WorkerInputError, type NarSession, type NarSummary } from '../compression/pool.ts';
import type { Database, NarRow } from '../db/schema.ts';
import { findObject } from '../db/repos/objects.ts';
import { findNarByHash, findNarChunks } from '../db/repos/nars.ts';
import { releaseLease, tryAcquireLease } from '../db/repos/leases.ts';
import { findUpstreamLookup, findUpstreamLookupsByNar, saveUpstreamLookup } from '../db/repos/upstream-lookups.ts';
import { narFingerprint } from '../nix/fingerprint.ts';
import { formatSha256Nix32, parseSha256 } from '../nix/hash.ts';
import { formatNarInfo, parseNarInfo, type NarInfo } from '../nix/narinfo.ts';
import { PublicKey, verifyNarInfoSignature } from '../nix/signing.ts';
import { BinaryCacheClient, UpstreamError, type UpstreamLimits, type UpstreamObserver } from '../upstream/binary-cache-client.ts';
import { caProvesStorePath } from '../nix/content-address.ts';
import type { ChunkStore } from './chunk-store.ts';
import { ingestNar } from './ingest.ts';
import { commitNar } from './nar-commit.ts';
import { openNarBody } from './nar-serve.ts';
import { foreignSignatures, renderNarInfo, signWithActiveKeys } from './narinfo.ts';
import type { Cache } from './caches.ts';
import { recordPath, type ValidPath } from './paths.ts';
import { unavailable } from './errors.ts';
import { isLocalUpstream, upstreamLabel, upstreamsOf, type StoredHttpUpstream } from './upstreams.ts';

export interface PullThroughSettings extends UpstreamLimits {
  /** How long an upstream miss (404 everywhere) is remembered. */
  negativeTtlSeconds: number;
  /** How long a verified upstream narinfo whose NAR nobody fetched yet is remembered. */
  positiveTtlSeconds: number;
}

export interface PullThroughDeps {
  db: Kysely<Database>;
  store: ChunkStore;
  chunking: ChunkingParams;
  maxNarSize: number;
  findCache(name: string): Promise<Cache | undefined>;
  observer: UpstreamObserver;
  settings: PullThroughSettings;
}

export interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface PulledNar {
  size: number;
  /** undefined for HEAD. */
  body?: Readable;
}

/** Formats Loft serves an upstream NAR from while it has not been ingested: `nar/<narhash>.nar`. */
const PENDING_NAR_RE = /^([0-9a-df-np-sv-z]{52})\.nar$/;
const SUPPORTED: ReadonlySet<string> = new Set<NixCompression>(['none', 'xz', 'zstd', 'br']);
/** A replica ingesting an upstream NAR holds this lease; it renews it while the NAR arrives. */
const LEASE_TTL_MS = 30_000;
const LEASE_POLL_MS = 250;
/** Decompression calls in flight to the worker, and the most bytes gathered into one while they are. */
const DECODES_IN_FLIGHT = 2;
const DECODE_BATCH = 1024 * 1024;
/** The longest an ingest waits for the other pulls' streams to end (#quiet). */
const INGEST_DEFER_MS = 10_000;

/**
 * The read flow of a cache with upstreams (docs/architecture.md, "Pull-through"). A narinfo
 * the cache lacks is asked of its upstreams in order and accepted only when signed by one of
 * that upstream's keys (or proven by its CA field); it is remembered in the database and
 * served re-signed with the cache's key, naming `nar/<narhash>.nar`. The NAR is fetched when a
 * client asks for it: decompressed and streamed to that client while it is verified, then
 * ingested through the chunk pipeline and recorded as a path of the cache. A local upstream's
 * paths are recorded at once, on the NAR the base already holds.
 */
export class PullThrough {
  readonly #holder = `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  readonly #narInfoFlights = new Map<string, Promise<string | null>>();
  readonly #narFlights = new Map<string, Promise<NarRow>>();
  readonly #clients = new Map<string, BinaryCacheClient>();
  /** Pulls of this server still streaming a NAR to its first client; ingests wait for none (see #quiet). */
  #streaming = 0;
  #onQuiet: Array<() => void> = [];

  constructor(private readonly d: PullThroughDeps) {}

  /** The narinfo of a path the cache lacks, from its upstreams; null when none has it. */
  narInfo(cache: Cache, hash: string, log: Log): Promise<string | null> {
    if (upstreamsOf(cache).length === 0) return Promise.resolve(null);
    const key = `${cache.id}/${hash}`;
    let flight = this.#narInfoFlights.get(key);
    if (!flight) {
      flight = this.#lookUp(cache, hash, log).finally(() => this.#narInfoFlights.delete(key));
      this.#narInfoFlights.set(key, flight);
    }
    return flight;
  }

  /**
   * A NAR named by a pending upstream narinfo of the cache (`<narhash>.nar`), or undefined.
   * Concurrent requests for it share one upstream download; the first is streamed the bytes as
   * they arrive, the others are served the ingested NAR.
   */
  async openNar(cache: Cache, file: string, head: boolean, log: Log): Promise<PulledNar | undefined> {
    const m = PENDING_NAR_RE.exec(file);
    if (!m || upstreamsOf(cache).length === 0) return undefined;
    const narHash = `sha256:${m[1]}`;
    const [lookup] = await findUpstreamLookupsByNar(this.d.db, cache.id, narHash, Date.now());
    if (!lookup?.narinfo || !lookup.upstream) return undefined;
    const info = parseNarInfo(lookup.narinfo, cache.store_dir);
    if (head) return { size: info.narSize };
    const upstream = upstreamsOf(cache).find((u) => upstreamLabel(u) === lookup.upstream);
    if (!upstream || isLocalUpstream(upstream)) return undefined;

    const flight = this.#narFlights.get(narHash);
    if (!flight) {
      const stored = await findNarByHash(this.d.db, narHash);
      if (!stored) {
        const live = await this.#startPull(cache, info, upstream, log);
        if (live) return { size: info.narSize, body: live };
      }
    }
    // Someone else brings (or brought) the NAR: this server, another replica, or a push.
    const nar = await (this.#narFlights.get(narHash) ?? this.#awaitOtherReplica(narHash));
    await this.#recordPending(cache, nar);
    return { size: nar.nar_size, body: await openNarBody(this.d.store, await findNarChunks(this.d.db, nar.id), true) };
  }

  async #lookUp(cache: Cache, hash: string, log: Log): Promise<string | null> {
    const now = Date.now();
    const known = await findUpstreamLookup(this.d.db, cache.id, hash, now);
    if (known) return known.narinfo === null ? null : this.#renderPending(cache, parseNarInfo(known.narinfo, cache.store_dir));
    let failed = false;
    for (const u of upstreamsOf(cache)) {
      const label = upstreamLabel(u);
      if (isLocalUpstream(u)) {
        const text = await this.#fromLocal(cache, u.cache, hash, label);
        if (text !== null) return text;
        continue;
      }
      const started = performance.now();
      let text: string | undefined;
      try {
        text = await this.#client(u).narInfo(hash);
      } catch (e) {
        if (!(e instanceof UpstreamError)) throw e;
        failed = true;
        this.d.observer.narInfo(label, 'error', (performance.now() - started) / 1000);
        this.d.observer.error(label, e.reason);
        log.warn({ upstream: label, path: hash, reason: e.reason, err: e.message }, 'upstream unavailable; trying the next');
        continue;
      }
      this.d.observer.narInfo(label, text === undefined ? 'miss' : 'hit', (performance.now() - started) / 1000);
      if (text === undefined) continue;
      const info = acceptNarInfo(text, hash, cache, u, log);
      if (!info) continue;
      await saveUpstreamLookup(this.d.db, {
        cache_id: cache.id,
        store_path_hash: hash,
        upstream: label,
        narinfo: text,
        nar_hash: info.narHash,
        expires_at: now + this.d.settings.positiveTtlSeconds * 1000,
      });
      // A NAR Loft already holds (pushed, or pulled by another cache) is not fetched again.
      const stored = await findNarByHash(this.d.db, info.narHash);
      if (stored) {
        await this.#recordPending(cache, stored);
        const obj = await findObject(this.d.db, cache.id, hash);
        if (obj) return renderNarInfo(this.d.db, cache, obj);
      }
      return this.#renderPending(cache, info);
    }
    // An upstream that failed may have the path: only a miss everywhere is remembered.
    if (!failed) {
      await saveUpstreamLookup(this.d.db, {
        cache_id: cache.id,
        store_path_hash: hash,
        upstream: null,
        narinfo: null,
        nar_hash: null,
        expires_at: now + this.d.settings.negativeTtlSeconds * 1000,
      });
    }
    return null;
  }

  /** A path of the base cache becomes the child's: a new entry on the same NAR, signed by the child. */
  async #fromLocal(cache: Cache, baseName: string, hash: string, label: string): Promise<string | null> {
    const base = await this.d.findCache(baseName);
    const obj = base && (await findObject(this.d.db, base.id, hash));
    if (!obj) return null;
    const p: ValidPath = {
      storePath: obj.store_path,
      hash,
      narHash: obj.nar.nar_hash,
      narSize: obj.nar.nar_size,
      references: JSON.parse(obj.references) as string[],
      deriver: obj.deriver ?? undefined,
      sigs: JSON.parse(obj.client_sigs) as string[],
      ca: obj.ca ?? undefined,
    };
    await recordPath(this.d.db, cache, p, obj.nar, null, { upstream: label });
    const own = await findObject(this.d.db, cache.id, hash);
    return own ? renderNarInfo(this.d.db, cache, own) : null;
  }

  /** An upstream narinfo as this cache serves it before the NAR is here: uncompressed, signed by the cache too. */
  #renderPending(cache: Cache, info: NarInfo): string {
    const sigs = signWithActiveKeys(cache, narFingerprint(info.storePath, info.narHash, info.narSize, info.references, cache.store_dir));
    return formatNarInfo({
      storePath: info.storePath,
      url: `nar/${info.narHash.slice('sha256:'.length)}.nar`,
      compression: 'none',
      fileHash: info.narHash,
      fileSize: info.narSize,
      narHash: info.narHash,
      narSize: info.narSize,
      references: info.references,
      deriver: info.deriver,
      sigs: [...sigs, ...foreignSignatures(cache, info.sigs)],
      ca: info.ca,
    });
  }

  /**
   * Takes the NAR's lease and starts the download; undefined when another replica holds the
   * lease. The returned stream is the first client's body, handed over once its first byte is
   * verified to be coming: a NAR refused before that is an error response, not a cut 200.
   */
  async #startPull(cache: Cache, info: NarInfo, upstream: StoredHttpUpstream, log: Log): Promise<Readable | undefined> {
    const lease = `pull:${info.narHash.slice('sha256:'.length)}`;
    if (!(await tryAcquireLease(this.d.db, lease, this.#holder, LEASE_TTL_MS))) return undefined;
    // Between our check and the lease, this server may have started the same pull.
    if (this.#narFlights.has(info.narHash)) return undefined;
    const client = new PassThrough({ highWaterMark: 1 << 20 });
    client.on('error', () => {}); // a refused NAR destroys it; the response (if any) is cut short by that
    const label = upstreamLabel(upstream);
    let started!: () => void;
    const firstByte = new Promise<void>((resolve) => (started = resolve));
    const flight = this.#pull(cache, info, upstream, client, started, log)
      .catch((e: Error) => {
        client.destroy(e);
        if (e instanceof UpstreamError) this.d.observer.error(label, e.reason);
        log.warn({ upstream: label, path: info.storePath, err: e.message }, 'upstream NAR refused; nothing was stored');
        throw unavailable(`the NAR of ${info.storePath} could not be fetched from its upstream: ${e.message}`);
      })
      .finally(() => {
        this.#narFlights.delete(info.narHash);
        void releaseLease(this.d.db, lease, this.#holder).catch(() => {});
      });
    this.#narFlights.set(info.narHash, flight);
    await Promise.race([firstByte, flight]);
    return client;
  }

  /**
   * Download → decompress, validate and hash in a worker session (the event loop only moves
   * bytes) → spool to a temporary file and stream to the client; the last piece reaches the
   * client only once the NAR's hash and size are verified, so a wrong NAR is always cut short.
   * The session's tasks go first on its worker, ahead of any ingest. The verified NAR is then
   * ingested from the spool file: the client gets the NAR at the speed of the download and the
   * decompression, not of chunking and compression, and memory stays bounded whatever the NAR size.
   */
  async #pull(
    cache: Cache,
    info: NarInfo,
    upstream: StoredHttpUpstream,
    client: PassThrough,
    firstByte: () => void,
    log: Log,
  ): Promise<NarRow> {
    const label = upstreamLabel(upstream);
    const lease = `pull:${info.narHash.slice('sha256:'.length)}`;
    const renew = setInterval(() => void tryAcquireLease(this.d.db, lease, this.#holder, LEASE_TTL_MS).catch(() => {}), LEASE_TTL_MS / 3);
    const started = performance.now();
    const spoolDir = await mkdtemp(path.join(os.tmpdir(), 'loft-pull-'));
    const spoolFile = path.join(spoolDir, 'nar');
    let fileBytes = 0;
    let session: NarSession | undefined;
    let streaming = true;
    this.#streaming++;
    const streamed = () => {
      if (!streaming) return;
      streaming = false;
      if (--this.#streaming === 0) for (const wake of this.#onQuiet.splice(0)) wake();
    };
    try {
      if (info.narSize > this.d.maxNarSize) throw new Error(`the NAR (${info.narSize} bytes) exceeds the server limit of ${this.d.maxNarSize} bytes`);
      const file = await this.#client(upstream).nar(info.url);
      const compression = info.compression as NixCompression;
      session = this.d.store.pool.openSession({
        compression,
        maxNarSize: info.narSize, // a longer NAR fails in the worker as soon as it is longer
        listingCap: 0,
        returnNar: true,
        urgent: true,
        inputName: info.url,
      });
      const spool = createWriteStream(spoolFile);
      const spoolClosed = new Promise<void>((resolve, reject) => spool.once('close', resolve).once('error', reject));
      let held: Buffer | undefined;
      const emit = async (pieces: Buffer[]) => {
        for (const nar of pieces) {
          if (nar.length === 0) continue;
          if (held) {
            firstByte();
            await put(client, held);
          }
          held = nar;
        }
      };
      // Download pieces go to the worker as they come, two calls in flight; while both are busy
      // the next pieces are gathered into one call of up to DECODE_BATCH bytes.
      const inFlight: Array<{ nar: Promise<Buffer[]>; done?: Buffer[] }> = [];
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      const send = () => {
        // Always a copy: the batch is transferred to the worker, and the spool may still hold the pieces.
        const batch = Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
        const call: { nar: Promise<Buffer[]>; done?: Buffer[] } = { nar: session!.decode(batch) };
        call.nar.then((b) => (call.done = b), () => {});
        inFlight.push(call);
      };
      let summary: NarSummary;
      try {
        for await (const piece of file) {
          fileBytes += piece.length;
          await put(spool, piece);
          pending.push(piece);
          pendingBytes += piece.length;
          while (inFlight[0]?.done) await emit(inFlight.shift()!.done!);
          while (inFlight.length >= DECODES_IN_FLIGHT && pendingBytes >= DECODE_BATCH) await emit(await inFlight.shift()!.nar);
          if (inFlight.length < DECODES_IN_FLIGHT) send();
        }
        if (pendingBytes > 0) send();
        while (inFlight.length > 0) await emit(await inFlight.shift()!.nar);
        const last = await session.end();
        await emit(last.nar);
        summary = last.summary;
      } catch (e) {
        throw verificationError(e, info);
      } finally {
        spool.end();
        await spoolClosed;
      }
      const size = summary.narSize;
      if (size !== info.narSize) throw new Error(`NarSize mismatch: the narinfo says ${info.narSize}, the NAR has ${size} bytes`);
      if (summary.narHash !== info.narHash) throw new Error(`NarHash mismatch: the narinfo says ${info.narHash}, the NAR hashes to ${summary.narHash}`);
      firstByte();
      if (held) await put(client, held);
      client.end();
      session.close();
      session = undefined;
      streamed();
      await this.#quiet();
      // The spool holds the file as downloaded (fewer bytes to write while the client waits); the
      // ingest decompresses it again, and must find the NAR that was verified.
      const ingested = await ingestNar(this.d.db, this.d.store, createReadStream(spoolFile, { highWaterMark: 1 << 20 }), {
        chunking: this.d.chunking,
        maxNarSize: this.d.maxNarSize,
        compression,
        inputName: info.url,
      });
      if (ingested.narHash !== info.narHash || ingested.narSize !== info.narSize) {
        throw new Error(`the spooled NAR changed on disk (it hashes to ${ingested.narHash}, ${ingested.narSize} bytes)`);
      }
      const nar = await commitNar(this.d.db, this.d.store, ingested.chunks, ingested, { verifyContent: false });
      await this.#recordPending(cache, nar);
      this.d.observer.narFetched(label, fileBytes, (performance.now() - started) / 1000);
      log.info({ upstream: label, path: info.storePath, narSize: size, newChunkBytes: ingested.newChunkBytes }, 'pulled through from upstream');
      return nar;
    } catch (e) {
      if (!(e instanceof UpstreamError)) this.d.observer.error(label, 'verification');
      throw e;
    } finally {
      streamed();
      session?.close();
      clearInterval(renew);
      await rm(spoolDir, { recursive: true, force: true });
    }
  }

  /**
   * Resolves once no pull of this server is streaming to a client, or after INGEST_DEFER_MS: an
   * ingest (chunking, zstd, storage writes) then does not take the server's CPU from a NAR that a
   * client is receiving, and the NAR waits in its spool file meanwhile.
   */
  #quiet(): Promise<void> {
    if (this.#streaming === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, INGEST_DEFER_MS);
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      function done() {
        resolve();
      }
      this.#onQuiet.push(wake);
    });
  }

  /** Every path of the cache whose verified upstream narinfo names this NAR becomes a path of the cache. */
  async #recordPending(cache: Cache, nar: NarRow): Promise<void> {
    for (const r of await findUpstreamLookupsByNar(this.d.db, cache.id, nar.nar_hash, Date.now())) {
      if (await findObject(this.d.db, cache.id, r.store_path_hash)) continue;
      const info = parseNarInfo(r.narinfo!, cache.store_dir);
      await recordPath(this.d.db, cache, validPathOf(info, cache), nar, null, { upstream: r.upstream ?? undefined });
    }
  }

  /**
   * Another replica holds the NAR's lease: wait until its NAR is recorded. A lease that becomes
   * free without a NAR (that replica failed or died) is a 503: the client's retry starts afresh.
   */
  async #awaitOtherReplica(narHash: string): Promise<NarRow> {
    const lease = `pull:${narHash.slice('sha256:'.length)}`;
    for (;;) {
      const nar = await findNarByHash(this.d.db, narHash);
      if (nar) return nar;
      if (await tryAcquireLease(this.d.db, lease, this.#holder, LEASE_TTL_MS)) {
        await releaseLease(this.d.db, lease, this.#holder);
        if (!(await findNarByHash(this.d.db, narHash))) {
          throw unavailable(`the NAR ${narHash} was being fetched by another replica, which stopped; retry`);
        }
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, LEASE_POLL_MS));
    }
  }

  #client(u: StoredHttpUpstream): BinaryCacheClient {
    const key = `${u.url}\n${u.authorization ?? ''}`;
    let c = this.#clients.get(key);
    if (!c) {
      c = new BinaryCacheClient({ url: u.url, authorization: u.authorization }, this.d.settings);
      this.#clients.set(key, c);
    }
    return c;
  }
}

/** The upstream's narinfo if it is usable: the path asked for, signed by a trusted key (or CA-proven), a known compression. */
function acceptNarInfo(text: string, hash: string, cache: Cache, u: StoredHttpUpstream, log: Log): NarInfo | undefined {
  const refuse = (why: string) => {
    log.warn({ upstream: u.url, path: hash, why }, 'upstream narinfo refused; treated as absent');
    return undefined;
  };
  let info: NarInfo;
  try {
    info = parseNarInfo(text, cache.store_dir);
    info.narHash = formatSha256Nix32(parseSha256(info.narHash));
  } catch (e) {
    return refuse((e as Error).message);
  }
  if (!info.storePath.startsWith(`${cache.store_dir}/${hash}-`)) return refuse(`it describes ${info.storePath}`);
  if (info.narSize <= 0) return refuse('NarSize is 0');
  const keys = u.public_keys.map((k) => PublicKey.parse(k));
  if (!verifyNarInfoSignature(info, keys, cache.store_dir) && !caProvesStorePath(info, cache.store_dir)) {
    return refuse(`no valid signature by ${keys.map((k) => k.name).join(', ')} and no CA field that proves the path`);
  }
  if (!SUPPORTED.has(info.compression)) return refuse(`its NAR is compressed with ${info.compression}, which Loft cannot decompress`);
  return info;
}

function validPathOf(info: NarInfo, cache: Cache): ValidPath {
  return {
    storePath: info.storePath,
    hash: info.storePath.slice(cache.store_dir.length + 1, cache.store_dir.length + 33),
    narHash: info.narHash,
    narSize: info.narSize,
    references: [...new Set(info.references)].sort(),
    deriver: info.deriver,
    sigs: info.sigs,
    ca: info.ca,
  };
}

/** The worker's verdict on an upstream NAR, as the reason it is refused (an UpstreamError of the download stays one). */
function verificationError(e: unknown, info: NarInfo): unknown {
  if (!(e instanceof WorkerInputError)) return e;
  switch (e.failure) {
    case 'too_large':
      return new Error(`the NAR is larger than its NarSize ${info.narSize}`);
    case 'codec':
      return new Error(`the NAR file does not decompress as ${info.compression}: ${e.message}`);
    default:
      return new Error(`not a valid NAR: ${e.message}`);
  }
}

/** Writes with backpressure; a stream that was closed (a client gone) takes nothing and does not block. */
function put(s: Writable, b: Buffer): Promise<void> | undefined {
  if (s.destroyed || s.writableEnded) return;
  if (s.write(b)) return;
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}
