import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
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
import { followSpool, SpoolFile } from './spool.ts';
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

/** The answer to a HEAD of a pending upstream NAR file. */
export interface PulledNarHead {
  /** The file's length, when known (its narinfo's FileSize). */
  size?: number;
}

/**
 * The response to the request that starts an upstream download, written as the file arrives.
 * Each piece is a view of one of the download's read buffers, reused once `done` is called:
 * a slow client holds the buffers, and the download waits for it.
 */
export interface NarSink {
  /** Called before the first byte: the response starts, with the file's length when it is known. */
  start(length: number | undefined): void;
  /** `done` once the piece is written out, or dropped (the client is gone); called exactly once. */
  write(piece: Buffer, done: () => void): void;
  end(): void;
  /** The NAR was refused after the response started: it is cut short of its length. */
  abort(): void;
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
/** Verification calls in flight to the worker. */
const VERIFY_CALLS_IN_FLIGHT = 2;
/**
 * The share of the download's pieces (NarFile.maxPieces: 4 MiB) the first client may have in its
 * socket's queue before it is served from the spool file: below 1, so that the client never holds
 * the download up.
 */
const CLIENT_LAG_SHARE = 0.75;
/** The longest an ingest waits for the other pulls' streams to end (#quiet). */
const INGEST_DEFER_MS = 10_000;

/** An upstream NAR file arriving: the spool it is written to, and its length when it is known. */
interface LiveFile {
  spool: SpoolFile;
  length: number | undefined;
}

/** An upstream NAR this server is fetching. */
interface NarFlight {
  /** Resolves once the file's first piece has arrived; undefined when the pull failed before. */
  live: Promise<LiveFile | undefined>;
  /** Resolves with the file's length once the whole file is verified; rejects when it is refused. */
  verified: Promise<number>;
  /** The NAR, once ingested. */
  stored: Promise<NarRow>;
}

/** What #pull reports to the request that started it, and to the requests that wait on it. */
interface PullEvents {
  /** The first client's response has started (its first byte is on its way). */
  started(live: LiveFile): void;
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
   * now (the caller serves it from there); undefined when no such narinfo names it. Concurrent
   * requests share one upstream download, and each is answered through its `sink` as the bytes
   * arrive ('live': its response has started): the first from the download, the others from the
   * spool file behind it (followSpool). Either way the last byte waits for the verdict.
   */
  async openNar(cache: Cache, file: string, head: boolean, log: Log, sink: NarSink): Promise<PulledNarHead | 'live' | 'stored' | undefined> {
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
      if (await this.#startPull(cache, info, upstream, sink, log)) return 'live';
      flight = this.#narFlights.get(narHash);
    }
    if (flight) {
      const live = await flight.live;
      if (!live) await flight.verified; // throws why the pull failed
      else {
        // Opened before the ingest removes it, the file stays readable to the end.
        const file = await open(live.spool.path).catch(() => undefined);
        if (file) {
          sink.start(live.length);
          void this.#follow(file, live.spool, 0, flight.verified, sink);
          return 'live';
        }
      }
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
   * Takes the NAR's lease and starts the download; false when another replica holds the lease.
   * Resolves true once `sink`'s response has started (its first byte is coming): a NAR refused
   * before that is an error response, not a cut 200.
   */
  async #startPull(cache: Cache, info: NarInfo, upstream: StoredHttpUpstream, sink: NarSink, log: Log): Promise<boolean> {
    const lease = `pull:${info.narHash.slice('sha256:'.length)}`;
    if (!(await tryAcquireLease(this.d.db, lease, this.#holder, LEASE_TTL_MS))) return false;
    // Between our check and the lease, this server may have started the same pull.
    if (this.#narFlights.has(info.narHash)) return false;
    const label = upstreamLabel(upstream);
    const spoolFile = path.join(os.tmpdir(), `loft-pull-${randomUUID()}`);
    let started!: (live: LiveFile | undefined) => void;
    const live = new Promise<LiveFile | undefined>((resolve) => (started = resolve));
    let verified!: (length: number) => void;
    let refused!: (e: Error) => void;
    const verdict = new Promise<number>((resolve, reject) => ((verified = resolve), (refused = reject)));
    verdict.catch(() => {}); // awaited by the requests that wait on this pull, if any
    const stored = this.#pull(cache, info, upstream, sink, spoolFile, { started, verified }, log)
      .catch((e: Error) => {
        if (e instanceof UpstreamError) this.d.observer.error(label, e.reason);
        log.warn({ upstream: label, path: info.storePath, err: e.message }, 'upstream NAR refused; nothing was stored');
        const answer = unavailable(`the NAR of ${info.storePath} could not be fetched from its upstream: ${e.message}`);
        refused(answer);
        started(undefined); // no-op once it has started
        throw answer;
      })
      .finally(() => {
        this.#narFlights.delete(info.narHash);
        void releaseLease(this.d.db, lease, this.#holder).catch(() => {});
        void rm(spoolFile, { force: true });
      });
    this.#narFlights.set(info.narHash, { live, verified: verdict, stored });
    // undefined: the pull failed before its first byte, and `stored` rejects with why
    if ((await Promise.race([live, stored])) === undefined) await stored;
    return true;
  }

  /**
   * Fetches, verifies and ingests an upstream NAR (#fetchVerified, then the chunk pipeline from
   * the spool file), holding its lease meanwhile. The ingest waits until no pull of this server
   * is streaming to a client (#quiet): the client gets the NAR at the speed of the download, not
   * of chunking and compression, and the NAR waits in its spool file meanwhile.
   */
  async #pull(
    cache: Cache,
    info: NarInfo,
    upstream: StoredHttpUpstream,
    sink: NarSink,
    spoolFile: string,
    events: PullEvents,
    log: Log,
  ): Promise<NarRow> {
    const label = upstreamLabel(upstream);
    const lease = `pull:${info.narHash.slice('sha256:'.length)}`;
    const renew = setInterval(() => void tryAcquireLease(this.d.db, lease, this.#holder, LEASE_TTL_MS).catch(() => {}), LEASE_TTL_MS / 3);
    const started = performance.now();
    const streamed = this.#streamingStarts();
    try {
      if (info.narSize > this.d.maxNarSize) throw new Error(`the NAR (${info.narSize} bytes) exceeds the server limit of ${this.d.maxNarSize} bytes`);
      const fileBytes = await this.#fetchVerified(info, upstream, sink, spoolFile, events);
      streamed();
      await this.#quiet();
      // The spool holds the file as downloaded; the ingest decompresses it again, and must find
      // the NAR that was verified.
      const ingested = await ingestNar(this.d.db, this.d.store, createReadStream(spoolFile, { highWaterMark: 1 << 20 }), {
        chunking: this.d.chunking,
        maxNarSize: this.d.maxNarSize,
        compression: info.compression as NixCompression,
        inputName: info.url,
      });
      if (ingested.narHash !== info.narHash || ingested.narSize !== info.narSize) {
        throw new Error(`the spooled NAR changed on disk (it hashes to ${ingested.narHash}, ${ingested.narSize} bytes)`);
      }
      const nar = await commitNar(this.d.db, this.d.store, ingested.chunks, ingested, { verifyContent: false });
      await this.#recordPending(cache, nar);
      this.d.observer.narFetched(label, fileBytes, (performance.now() - started) / 1000);
      log.info({ upstream: label, path: info.storePath, narSize: info.narSize, newChunkBytes: ingested.newChunkBytes }, 'pulled through from upstream');
      return nar;
    } catch (e) {
      if (!(e instanceof UpstreamError)) this.d.observer.error(label, 'verification');
      throw e;
    } finally {
      streamed();
      clearInterval(renew);
    }
  }

  /**
   * Download → spool to a temporary file and pass on to `sink` as it is, while a worker session
   * decompresses, validates and hashes it, reading the spool file behind the download (the event
   * loop only moves bytes, in the download's recycled buffers; the session's tasks go first on
   * its worker, ahead of any ingest). The last piece reaches the client only once the NAR's hash
   * and size are verified, so a wrong NAR is always cut short. Resolves with the file's length.
   */
  async #fetchVerified(info: NarInfo, upstream: StoredHttpUpstream, sink: NarSink, spoolFile: string, events: PullEvents): Promise<number> {
    const file = await this.#client(upstream).nar(info.url);
    let session: NarSession | undefined;
    let spool: SpoolFile;
    let length: number | undefined;
    try {
      if (file.length !== undefined && info.fileSize !== undefined && file.length !== info.fileSize) {
        throw new Error(`the upstream sends ${file.length} bytes, its narinfo's FileSize says ${info.fileSize}`);
      }
      length = file.length ?? info.fileSize;
      session = this.d.store.pool.openSession({
        compression: info.compression as NixCompression,
        maxNarSize: info.narSize, // a longer NAR fails in the worker as soon as it is longer
        listingCap: 0,
        urgent: true,
        inputName: info.url,
        hashInput: false, // no signature covers FileHash: the signed NarHash is what is checked
      });
      spool = await SpoolFile.open(spoolFile, () => tell());
    } catch (e) {
      file.close();
      session?.close();
      throw e;
    }
    const verifier = session;
    // The worker reads the spool file itself as it grows (no bytes cross threads), with at most
    // VERIFY_CALLS_IN_FLIGHT calls, each up to what is on disk when it is made.
    const calls = new Set<Promise<void>>();
    let told = 0;
    let failure: unknown;
    const fail = (e: unknown) => {
      failure ??= e;
      file.close();
    };
    const tell = () => {
      if (failure !== undefined || calls.size >= VERIFY_CALLS_IN_FLIGHT || spool.written <= told) return;
      told = spool.written;
      const call: Promise<void> = verifier.inputFile(spoolFile, told).then(
        () => {
          calls.delete(call);
          tell();
        },
        (e: unknown) => {
          calls.delete(call);
          fail(e);
        },
      );
      calls.add(call);
    };
    // Each piece goes to the spool and to the client, and its buffer back to the download once
    // both are done; the newest piece is held back until the verdict. A client that falls
    // CLIENT_LAG_SHARE of the download's pieces behind is served from the spool file from then on
    // (followSpool), so it no longer holds the download's buffers: the download goes on at the
    // upstream's pace.
    let held: { piece: Buffer; done: () => void } | undefined;
    let begun = false;
    let sent = 0;
    let lag = 0;
    const lagLimit = Math.floor(file.maxPieces * CLIENT_LAG_SHARE);
    let follower: Promise<void> | undefined;
    let settle!: { resolve(length: number): void; reject(e: unknown): void };
    const fileEnd = new Promise<number>((resolve, reject) => (settle = { resolve, reject }));
    fileEnd.catch(() => {});
    const toClient = (h: { piece: Buffer; done: () => void }) => {
      if (!begun) {
        begun = true;
        sink.start(length);
        events.started({ spool, length });
      }
      if (follower) return h.done();
      lag++;
      sent += h.piece.length;
      sink.write(h.piece, () => {
        lag--;
        h.done();
      });
      if (lag >= lagLimit) {
        follower = open(spool.path).then((f) => this.#follow(f, spool, sent, fileEnd, sink), () => sink.abort());
      }
    };
    try {
      let summary: NarSummary;
      let arrived = 0;
      try {
        await file.read((piece, release) => {
          // a FileSize given as the response's length must hold: nothing past it goes out
          if ((arrived += piece.length) > (length ?? Infinity)) return fail(new Error(`the file is longer than its narinfo's FileSize ${length}`));
          let refs = 2;
          const done = () => --refs === 0 && release();
          spool.append(piece, done);
          if (held) toClient(held);
          held = { piece, done };
        });
        await spool.flush();
        tell();
        while (calls.size > 0) await Promise.all(calls);
        if (failure !== undefined) throw failure;
        summary = (await verifier.end()).summary;
      } catch (e) {
        throw verificationError(failure ?? e, info);
      } finally {
        await spool.close();
      }
      const fileBytes = spool.written;
      if (summary.narSize !== info.narSize) throw new Error(`NarSize mismatch: the narinfo says ${info.narSize}, the NAR has ${summary.narSize} bytes`);
      if (summary.narHash !== info.narHash) throw new Error(`NarHash mismatch: the narinfo says ${info.narHash}, the NAR hashes to ${summary.narHash}`);
      if (info.fileSize !== undefined && fileBytes !== info.fileSize) throw new Error(`FileSize mismatch: the narinfo says ${info.fileSize}, the file has ${fileBytes} bytes`);
      events.verified(fileBytes);
      toClient(held!); // a NAR of NarSize > 0 came in one piece at least
      if (follower) settle.resolve(fileBytes); // it sends the rest, and ends the response
      else sink.end();
      return fileBytes;
    } catch (e) {
      settle.reject(e);
      if (begun) sink.abort();
      throw e;
    } finally {
      verifier.close();
    }
  }

  /**
   * Serves a response (started) the spool file from `from` as it grows, through `file` (which it
   * closes), ending it once `end` gives the verified length: a lagging first client (see
   * #fetchVerified), or a request that joined the download.
   */
  #follow(file: FileHandle, spool: SpoolFile, from: number, end: Promise<number>, sink: NarSink): Promise<void> {
    const streamed = this.#streamingStarts();
    return followSpool(file, spool, from, end, (piece) => new Promise((resolve) => sink.write(piece, resolve)))
      .then(() => sink.end(), () => sink.abort())
      .finally(streamed);
  }

  /** Counts a response being streamed from a pull until the returned function is called (see #quiet). */
  #streamingStarts(): () => void {
    this.#streaming++;
    let streaming = true;
    return () => {
      if (!streaming) return;
      streaming = false;
      if (--this.#streaming === 0) for (const wake of this.#onQuiet.splice(0)) wake();
    };
  }

  /**
   * Resolves once no pull of this server is streaming to a client, or after INGEST_DEFER_MS: an
   * ingest (chunking, zstd, storage writes) then does not take the server's CPU from a NAR that a
   * client is receiving, and the NAR waits in its spool file meanwhile.
   */
  #quiet(): Promise<void> {
    if (this.#streaming === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, INGEST_DEFER_MS);
      this.#onQuiet.push(() => {
        clearTimeout(timer);
        resolve();
      });
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
