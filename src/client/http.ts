// A typed client for Loft's JSON API and chunk protocol (docs/api.md). It runs in
// the CLI, so it depends on nothing server-side.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CacheConfig, NarCommitResult, NarInfoJson } from '../api/v1.ts';

export type { CacheConfig, NarInfoJson };

export interface ServerInfo {
  version: string;
  chunking: { min_size: number; avg_size: number; max_size: number };
  max_chunk_request_bytes: number;
  chunk_compression: 'zstd';
}

export type { NarCommitResult };

export const CHUNKS_CONTENT_TYPE = 'application/x-loft-chunks';

/** A response other than 2xx; `code` and `body` are the server's JSON error when it sent one. */
export class LoftApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly body: Record<string, unknown> | undefined,
    what: string,
  ) {
    const detail = typeof body?.message === 'string' ? body.message : code;
    super(`${what}: HTTP ${status} ${detail}`);
    this.name = 'LoftApiError';
  }
}

export interface LoftClientOptions {
  endpoint: string;
  token?: string;
  /** Attempts after the first on network errors, 5xx and 429 (default 4). */
  retries?: number;
  userAgent?: string;
}

interface RequestOptions {
  body?: Uint8Array<ArrayBuffer> | string;
  contentType?: string;
  signal?: AbortSignal;
  /** Overrides the client's retry count. */
  retries?: number;
}

const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 15_000;

export class LoftClient {
  readonly endpoint: string;
  readonly #token?: string;
  readonly #retries: number;
  readonly #userAgent: string;

  constructor(opts: LoftClientOptions) {
    this.endpoint = opts.endpoint.replace(/\/+$/, '');
    this.#token = opts.token;
    this.#retries = opts.retries ?? 4;
    this.#userAgent = opts.userAgent ?? 'loft-client';
  }

  serverInfo(signal?: AbortSignal): Promise<ServerInfo> {
    return this.#json('GET', '/_api/v1/server-info', undefined, signal);
  }

  async getMissingPaths(cache: string, storePathHashes: string[], signal?: AbortSignal): Promise<string[]> {
    const r = await this.#json<{ missing_paths: string[] }>(
      'POST',
      '/_api/v1/get-missing-paths',
      { cache, store_path_hashes: storePathHashes },
      signal,
    );
    return r.missing_paths;
  }

  /** The chunks (sha256 hex of the uncompressed bytes) the client must upload to `cache`. */
  async missingChunks(cache: string, chunks: string[], signal?: AbortSignal): Promise<string[]> {
    const r = await this.#json<{ missing: string[] }>('POST', '/_api/v1/chunks/missing', { cache, chunks }, signal);
    return r.missing;
  }

  /** Sends one body of chunk records (see chunkRecordHeader). */
  uploadChunks(cache: string, records: Uint8Array<ArrayBuffer>, signal?: AbortSignal): Promise<{ stored: number; deduplicated: number }> {
    return this.#request('POST', `/_api/v1/chunks?cache=${encodeURIComponent(cache)}`, {
      body: records,
      contentType: CHUNKS_CONTENT_TYPE,
      signal,
    }).then((res) => res.json() as Promise<{ stored: number; deduplicated: number }>);
  }

  /** Commits a NAR from its chunk list; a 400 listing `missing` chunks is a LoftApiError whose body has them. */
  commitNar(meta: NarInfoJson, chunks: string[], signal?: AbortSignal): Promise<NarCommitResult> {
    return this.#json('POST', '/_api/v1/nar', { ...meta, chunks }, signal);
  }

  cacheConfig(cache: string, signal?: AbortSignal): Promise<CacheConfig> {
    return this.#json('GET', `/_api/v1/cache-config/${encodeURIComponent(cache)}`, undefined, signal);
  }

  /**
   * A JSON call of the API. Retried like every request unless `retry: false`:
   * calls that change state (create, delete) are not repeated blindly.
   */
  async request<T>(method: string, path: string, body?: unknown, opts: { retry?: boolean; signal?: AbortSignal } = {}): Promise<T> {
    const res = await this.#request(method, path, {
      body: body === undefined ? undefined : JSON.stringify(body),
      contentType: body === undefined ? undefined : 'application/json',
      signal: opts.signal,
      retries: opts.retry === false ? 0 : undefined,
    });
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  #json<T>(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.request<T>(method, path, body, { signal });
  }

  /** One request, retried on network errors, 5xx and 429 with exponential backoff and jitter. */
  async #request(method: string, path: string, o: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, accept: 'application/json' };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    if (o.contentType) headers['content-type'] = o.contentType;
    const what = `${method} ${path.split('?')[0]}`;
    const retries = o.retries ?? this.#retries;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(this.endpoint + path, { method, headers, ...fetchBody(o.body), signal: o.signal });
      } catch (e) {
        if (o.signal?.aborted || attempt >= retries) throw new Error(`cannot reach ${this.endpoint} (${what}): ${describe(e)}`, { cause: e });
        await sleep(backoff(attempt), undefined, { signal: o.signal });
        continue;
      }
      if (res.ok) return res;
      const retryable = res.status >= 500 || res.status === 429;
      if (!retryable || attempt >= retries) throw await apiError(res, what);
      await res.body?.cancel();
      await sleep(retryAfter(res) ?? backoff(attempt), undefined, { signal: o.signal });
    }
  }
}

/** Bodies above this size are streamed from the caller's buffer: fetch would first copy a byte array. */
const STREAMED_BODY = 1024 * 1024;
const STREAM_SLICE = 256 * 1024;

/** The fetch body for one attempt (a fresh stream each time, so a retry sends it again). */
function fetchBody(body: RequestOptions['body']): { body?: BodyInit; duplex?: 'half' } {
  if (!(body instanceof Uint8Array) || body.length <= STREAMED_BODY) return { body };
  let offset = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(body.subarray(offset, offset + STREAM_SLICE));
      offset += STREAM_SLICE;
      if (offset >= body.length) controller.close();
    },
  });
  return { body: stream, duplex: 'half' };
}

async function apiError(res: Response, what: string): Promise<LoftApiError> {
  const text = await res.text().catch(() => '');
  let body: Record<string, unknown> | undefined;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = text ? { message: text.slice(0, 200) } : undefined;
  }
  const code = typeof body?.error === 'string' ? body.error : res.statusText || 'error';
  return new LoftApiError(res.status, code, body, what);
}

/** Full jitter: a random delay up to an exponentially growing cap. */
function backoff(attempt: number): number {
  return Math.random() * Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (attempt + 1));
}

/** Retry-After in seconds or as an HTTP date, capped so a bad header cannot stall a push for long. */
function retryAfter(res: Response): number | undefined {
  const v = res.headers.get('retry-after');
  if (!v) return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(v) - Date.now();
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 60_000) : undefined;
}

/** The useful part of a fetch failure: undici hides the system error (ECONNREFUSED …) in `cause`. */
function describe(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  return err.cause?.code ?? err.cause?.message ?? err.message;
}

/** The header of one chunk record: `[sha256: 32][size: u32 BE][frame length: u32 BE]`, then the zstd frame. */
export function chunkRecordHeader(hash: string, size: number, frameLength: number): Buffer {
  const header = Buffer.alloc(40);
  header.write(hash, 0, 32, 'hex');
  header.writeUInt32BE(size, 32);
  header.writeUInt32BE(frameLength, 36);
  return header;
}
