import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { Kysely } from 'kysely';
import type { ChunkingParams } from '../chunking/fastcdc.ts';
import { extensionFor, type NixCompression } from '../compression/codecs.ts';
import { WorkerInputError, type NarSession, type NarSummary } from '../compression/pool.ts';
import type { Database, NarRow } from '../db/schema.ts';
import { findObject } from '../db/repos/objects.ts';
import { findNarByHash } from '../db/repos/nars.ts';
import { newLeaseHolder, releaseLease, tryAcquireLease } from '../db/repos/leases.ts';
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
  /** The file's length, when known (the upstream's Content-Length or FileSize). */
  size?: number;
  /** undefined for HEAD. */
  body?: Readable;
}

/**
 * The file a pending upstream narinfo names: `nar/<narhash>.nar` plus the extension of the
 * upstream's compression, which Loft passes on as it is (Nix decompresses it, as it would from
 * the upstream). Once the NAR is ingested, the same names are served from it (the route's
 * `<narhash>.nar.xz` and the like), so a narinfo a client kept stays valid.
 */
const PENDING_NAR_RE = /^([0-9a-df-np-sv-z]{52})\.nar(\.xz|\.zst|\.br)?$/;
const SUPPORTED: ReadonlySet<string> = new Set<NixCompression>(['none', 'xz', 'zstd', 'br']);
/** A replica ingesting an upstream NAR holds this lease; it renews it while the NAR arrives. */
const LEASE_TTL_MS = 30_000;
const LEASE_POLL_MS = 250;
/** Verification calls in flight to the worker, and the most bytes gathered into one while they are. */
const VERIFY_CALLS_IN_FLIGHT = 2;
const VERIFY_BATCH = 1024 * 1024;
/** The longest an ingest waits for the other pulls' streams to end (#quiet). */
const INGEST_DEFER_MS = 10_000;

/** An upstream NAR this server is fetching. */
interface NarFlight {
  /** The file as downloaded, until the NAR is ingested. */
  spoolFile: string;
  /** Resolves with the file's length once the whole file is verified; rejects when it is refused. */
  verified: Promise<number>;
  /** The NAR, once ingested. */
  stored: Promise<NarRow>;
}

/** What #pull reports to the request that started it, and to the requests that wait on it. */
interface PullEvents {
  /** The first byte is about to go to the client: its response may start, with this length. */
  started(length: number | undefined): void;
  verified(length: number): void;
}

/**
 * The read flow of a cache with upstreams (docs/architecture.md, "Pull-through"). A narinfo
 * the cache lacks is asked of its upstreams in order and accepted only when signed by one of
 * that upstream's keys (or proven by its CA field); it is remembered in the database and
 * served re-signed with the cache's key, naming `nar/<narhash>.nar[.xz|.zst|.br]`. The NAR is
 * fetched when a client asks for it and passed on as the upstream compressed it, while a worker
 * decompresses, validates and hashes it; it is then ingested through the chunk pipeline and
 * recorded as a path of the cache. A local upstream's paths are recorded at once, on the NAR
 * the base already holds.
 */
export class PullThrough {
  readonly #holder = newLeaseHolder();
  readonly #narInfoFlights = new Map<string, Promise<string | null>>();
  readonly #narFlights = new Map<string, NarFlight>();
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
   * The file named by a pending upstream narinfo of the cache; 'stored' when its NAR is stored
   * now (the caller serves it from there); undefined when no such narinfo names it. Concurrent requests share one
   * upstream download; the first is streamed the bytes as they arrive, the others are served the
   * downloaded file once it is verified.
   */
  async openNar(cache: Cache, file: string, head: boolean, log: Log): Promise<PulledNar | 'stored' | undefined> {
    const m = PENDING_NAR_RE.exec(file);
    if (!m || upstreamsOf(cache).length === 0) return undefined;
    const narHash = `sha256:${m[1]}`;
    const [lookup] = await findUpstreamLookupsByNar(this.d.db, cache.id, narHash, Date.now());
    if (!lookup?.narinfo || !lookup.upstream) return undefined;
    const info = parseNarInfo(lookup.narinfo, cache.store_dir);
    if (`nar/${file}` !== pendingUrl(info)) return undefined;
    const upstream = upstreamsOf(cache).find((u) => upstreamLabel(u) === lookup.upstream);
    if (!upstream || isLocalUpstream(upstream)) return undefined;
    if (head) return { size: info.fileSize };

    let flight = this.#narFlights.get(narHash);
    if (!flight && !(await findNarByHash(this.d.db, narHash))) {
      const live = await this.#startPull(cache, info, upstream, log);
      if (live) return live;
      flight = this.#narFlights.get(narHash);
    }
    if (flight) {
      const size = await flight.verified;
      // Opened before the ingest removes it, the file stays readable to the end.
      const spool = await open(flight.spoolFile).catch(() => undefined);
      if (spool) return { size, body: spool.createReadStream({ highWaterMark: 1 << 20 }) };
    }
    // The NAR is (or is being) stored: by this server, another replica, or a push.
    await this.#recordPending(cache, await (flight?.stored ?? this.#awaitOtherReplica(narHash)));
    return 'stored';
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

  /** An upstream narinfo as this cache serves it before the NAR is here: its file passed on, signed by the cache too. */
  #renderPending(cache: Cache, info: NarInfo): string {
    const sigs = signWithActiveKeys(cache, narFingerprint(info.storePath, info.narHash, info.narSize, info.references, cache.store_dir));
    // No FileHash or FileSize: once the NAR is ingested, the same URL is served from Loft's copy.
    return formatNarInfo({
      storePath: info.storePath,
      url: pendingUrl(info),
      compression: info.compression,
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
   * lease. The returned body is the first client's, handed over once its first byte is coming:
   * a NAR refused before that is an error response, not a cut 200.
   */
  async #startPull(cache: Cache, info: NarInfo, upstream: StoredHttpUpstream, log: Log): Promise<PulledNar | undefined> {
    const lease = `pull:${info.narHash.slice('sha256:'.length)}`;
    if (!(await tryAcquireLease(this.d.db, lease, this.#holder, LEASE_TTL_MS))) return undefined;
    // Between our check and the lease, this server may have started the same pull.
    if (this.#narFlights.has(info.narHash)) return undefined;
    const client = new PassThrough({ highWaterMark: 1 << 20 });
    client.on('error', () => {}); // a refused NAR destroys it; the response (if any) is cut short by that
    const label = upstreamLabel(upstream);
    const spoolFile = path.join(os.tmpdir(), `loft-pull-${randomUUID()}`);
    let started!: (length: number | undefined) => void;
    const headers = new Promise<number | undefined>((resolve) => (started = resolve));
    let verified!: (length: number) => void;
    let refused!: (e: Error) => void;
    const verdict = new Promise<number>((resolve, reject) => ((verified = resolve), (refused = reject)));
    verdict.catch(() => {}); // awaited by the requests that wait on this pull, if any
    const stored = this.#pull(cache, info, upstream, client, spoolFile, { started, verified }, log)
      .catch((e: Error) => {
        client.destroy(e);
        if (e instanceof UpstreamError) this.d.observer.error(label, e.reason);
        log.warn({ upstream: label, path: info.storePath, err: e.message }, 'upstream NAR refused; nothing was stored');
        const answer = unavailable(`the NAR of ${info.storePath} could not be fetched from its upstream: ${e.message}`);
        refused(answer);
        throw answer;
      })
      .finally(() => {
        this.#narFlights.delete(info.narHash);
        void releaseLease(this.d.db, lease, this.#holder).catch(() => {});
        void rm(spoolFile, { force: true });
      });
    this.#narFlights.set(info.narHash, { spoolFile, verified: verdict, stored });
    const size = await Promise.race([headers, stored.then(() => undefined)]);
    return { size, body: client };
  }

  /**
   * Download → spool to a temporary file and pass on to the client as it is, while a worker
   * session decompresses, validates and hashes it (the event loop only moves bytes; the
   * session's tasks go first on its worker, ahead of any ingest). The last piece reaches the
   * client only once the NAR's hash and size, and the file's hash when the upstream gave one,
   * are verified, so a wrong NAR is always cut short. The verified NAR is then ingested from
   * the spool file: the client gets the NAR at the speed of the download, not of chunking and
   * compression, and memory stays bounded whatever the NAR size.
   */
  async #pull(
    cache: Cache,
    info: NarInfo,
    upstream: StoredHttpUpstream,
    client: PassThrough,
    spoolFile: string,
    events: PullEvents,
    log: Log,
  ): Promise<NarRow> {
    const label = upstreamLabel(upstream);
    const lease = `pull:${info.narHash.slice('sha256:'.length)}`;
    const renew = setInterval(() => void tryAcquireLease(this.d.db, lease, this.#holder, LEASE_TTL_MS).catch(() => {}), LEASE_TTL_MS / 3);
    const started = performance.now();
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
      if (file.length !== undefined && info.fileSize !== undefined && file.length !== info.fileSize) {
        throw new Error(`the upstream sends ${file.length} bytes, its narinfo's FileSize says ${info.fileSize}`);
      }
      const length = file.length ?? info.fileSize;
      const compression = info.compression as NixCompression;
      session = this.d.store.pool.openSession({
        compression,
        maxNarSize: info.narSize, // a longer NAR fails in the worker as soon as it is longer
        listingCap: 0,
        urgent: true,
        inputName: info.url,
      });
      const spool = createWriteStream(spoolFile, { highWaterMark: 4 << 20 });
      const spoolClosed = new Promise<void>((resolve, reject) => spool.once('close', resolve).once('error', reject));
      let held: Buffer | undefined;
      // The worker reads the spool file itself as it grows (no bytes cross threads), two calls in
      // flight; while both are busy, it is told of more once VERIFY_BATCH bytes are written.
      // Once the spool is closed, `spooled` is the whole file.
      let spooled = 0;
      let told = 0;
      const inFlight: Array<{ call: Promise<unknown>; done?: true }> = [];
      const tell = () => {
        const entry: { call: Promise<unknown>; done?: true } = { call: session!.inputFile(spoolFile, spooled) };
        entry.call.then(() => (entry.done = true), () => {});
        inFlight.push(entry);
        told = spooled;
      };
      let summary: NarSummary;
      try {
        for await (const piece of file.body) {
          await put(spool, piece, () => (spooled += piece.length));
          if (held) {
            events.started(length);
            await put(client, held);
          }
          held = piece;
          while (inFlight[0]?.done) await inFlight.shift()!.call;
          while (inFlight.length >= VERIFY_CALLS_IN_FLIGHT && spooled - told >= VERIFY_BATCH) await inFlight.shift()!.call;
          if (inFlight.length < VERIFY_CALLS_IN_FLIGHT && spooled > told) tell();
        }
        spool.end();
        await spoolClosed;
        if (spooled > told) tell();
        for (const entry of inFlight.splice(0)) await entry.call;
        summary = (await session.end()).summary;
      } catch (e) {
        throw verificationError(e, info);
      } finally {
        if (!spool.writableEnded) spool.end();
        await spoolClosed;
      }
      if (summary.narSize !== info.narSize) throw new Error(`NarSize mismatch: the narinfo says ${info.narSize}, the NAR has ${summary.narSize} bytes`);
      if (summary.narHash !== info.narHash) throw new Error(`NarHash mismatch: the narinfo says ${info.narHash}, the NAR hashes to ${summary.narHash}`);
      const fileHashError = fileHashMismatch(info, summary, spooled);
      if (fileHashError) throw new Error(fileHashError);
      events.verified(spooled);
      events.started(length);
      if (held) await put(client, held);
      client.end();
      session.close();
      session = undefined;
      streamed();
      await this.#quiet();
      // The spool holds the file as downloaded; the ingest decompresses it again, and must find
      // the NAR that was verified.
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
      this.d.observer.narFetched(label, spooled, (performance.now() - started) / 1000);
      log.info({ upstream: label, path: info.storePath, narSize: info.narSize, newChunkBytes: ingested.newChunkBytes }, 'pulled through from upstream');
      return nar;
    } catch (e) {
      if (!(e instanceof UpstreamError)) this.d.observer.error(label, 'verification');
      throw e;
    } finally {
      streamed();
      session?.close();
      clearInterval(renew);
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

/** `nar/<narhash>.nar` and the extension of the upstream file's compression (PENDING_NAR_RE). */
function pendingUrl(info: NarInfo): string {
  return `nar/${info.narHash.slice('sha256:'.length)}.nar${extensionFor(info.compression as NixCompression)}`;
}

/** Why the downloaded file is not the one the upstream's narinfo describes, if it is not. */
function fileHashMismatch(info: NarInfo, summary: NarSummary, fileBytes: number): string | undefined {
  if (info.fileSize !== undefined && fileBytes !== info.fileSize) return `FileSize mismatch: the narinfo says ${info.fileSize}, the file has ${fileBytes} bytes`;
  // An uncompressed file's hash is its NarHash, checked already; other kinds than sha256 are not checked.
  if (info.fileHash === undefined || summary.inputHash === undefined || !info.fileHash.startsWith('sha256:')) return undefined;
  const expected = parseSha256(info.fileHash).toString('hex');
  return expected === summary.inputHash ? undefined : `FileHash mismatch: the narinfo says ${info.fileHash}, the file hashes to sha256:${summary.inputHash}`;
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

/**
 * Writes with backpressure; a stream that was closed (a client gone) takes nothing and does not
 * block. `written` is called once the bytes are out (in the file, for a file).
 */
function put(s: Writable, b: Buffer, written?: () => void): Promise<void> | undefined {
  if (s.destroyed || s.writableEnded) return;
  if (s.write(b, written && ((e) => !e && written()))) return;
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
