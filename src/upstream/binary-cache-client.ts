import { proxyFor } from './proxy.ts';
import { download, DownloadError, type Download, type DownloadFailure } from './download.ts';
import { Semaphore } from './semaphore.ts';

/** Why an upstream could not answer; each is logged and counted, and none is a miss. */
export type UpstreamFailure = 'timeout' | 'unreachable' | 'server_error' | 'denied' | 'bad_response';

export class UpstreamError extends Error {
  constructor(
    readonly reason: UpstreamFailure,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

export interface UpstreamLimits {
  /** For the response headers, and between two pieces of a body. */
  timeoutMs: number;
  /** Requests in flight toward this upstream (a NAR holds its slot until its body is read). */
  maxConcurrency: number;
}

/** An upstream NAR file being downloaded: see Download.read. */
export interface NarFile {
  /** The file's length, when the upstream says it. */
  length: number | undefined;
  /** The pieces the consumer may hold before the download waits for it (Download.maxPieces). */
  maxPieces: number;
  read(onPiece: (piece: Buffer, release: () => void) => void): Promise<void>;
  close(): void;
}

export interface UpstreamEndpoint {
  url: string;
  /** An `Authorization` header value, sent to this upstream's origin only. */
  authorization?: string;
}

/** What the pull-through flow reports per upstream; the server's Metrics turns it into Prometheus series. */
export interface UpstreamObserver {
  narInfo(upstream: string, result: 'hit' | 'miss' | 'error', seconds: number): void;
  narFetched(upstream: string, bytes: number, seconds: number): void;
  error(upstream: string, reason: UpstreamFailure | 'verification'): void;
}

const MAX_NARINFO_BYTES = 1024 * 1024;

/**
 * The HTTP client of one binary cache (cache.nixos.org, a file:// copy served over HTTP,
 * another Loft): narinfo lookups and NAR downloads, each bounded in time and in number.
 */
export class BinaryCacheClient {
  readonly #slots: Semaphore;

  constructor(
    readonly endpoint: UpstreamEndpoint,
    private readonly limits: UpstreamLimits,
  ) {
    this.#slots = new Semaphore(limits.maxConcurrency);
  }

  /** The narinfo text, or undefined when the upstream does not have the path (404/410). */
  async narInfo(hash: string): Promise<string | undefined> {
    const release = await this.#slots.acquire();
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.limits.timeoutMs);
    try {
      const res = await this.#get(`${this.endpoint.url}/${hash}.narinfo`, abort.signal);
      if (res.status === 404 || res.status === 410) {
        await res.body?.cancel();
        return undefined;
      }
      const body = Buffer.from(await res.arrayBuffer());
      if (body.length > MAX_NARINFO_BYTES) throw new UpstreamError('bad_response', `narinfo of ${hash} is larger than ${MAX_NARINFO_BYTES} bytes`);
      return body.toString('utf8');
    } catch (e) {
      throw this.#classify(e, abort.signal);
    } finally {
      clearTimeout(timer);
      release();
    }
  }

  /**
   * Opens a NAR file (`URL:` of a narinfo, relative to the cache URL), following redirects: its
   * length when the upstream says it, and a reader of the body whose pieces are views of
   * recycled buffers (download.ts: no allocation per piece). A silence longer than the timeout
   * fails it, and so does a body shorter than its length. The slot is held until the body is
   * read or the file is closed.
   */
  async nar(fileUrl: string): Promise<NarFile> {
    const release = await this.#slots.acquire();
    let url = new URL(fileUrl, `${this.endpoint.url}/`);
    let file: Download | undefined;
    try {
      for (let redirects = 0; ; redirects++) {
        if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UpstreamError('bad_response', `${url.href}: not an http(s) URL`);
        file = await download(url, { headers: this.#headersFor(url), timeoutMs: this.limits.timeoutMs, proxy: proxyFor(url) });
        const location = file.headers.get('location');
        if (file.status < 300 || file.status >= 400 || location === undefined) break;
        file.close();
        if (redirects >= MAX_REDIRECTS) throw new UpstreamError('bad_response', `${url.href}: more than ${MAX_REDIRECTS} redirects`);
        url = new URL(location, url);
      }
      if (file.status === 404 || file.status === 410) throw new UpstreamError('bad_response', `${fileUrl} is missing upstream (HTTP ${file.status})`);
      if (file.status < 200 || file.status >= 300) throw statusError(url.href, file.status);
    } catch (e) {
      file?.close();
      release();
      throw this.#classify(e);
    }
    const opened = file;
    let released = false;
    const done = () => {
      if (!released) (released = true), release();
    };
    return {
      length: opened.length,
      maxPieces: opened.maxPieces,
      read: (onPiece) =>
        opened.read(onPiece).then(done, (e: unknown) => {
          done();
          throw this.#classify(e);
        }),
      close: () => {
        opened.close();
        done();
      },
    };
  }

  async #get(url: string, signal: AbortSignal): Promise<Response> {
    const res = await fetch(url, { headers: this.#headersFor(new URL(url)), signal, redirect: 'follow' });
    if (res.ok || res.status === 404 || res.status === 410) return res;
    await res.body?.cancel();
    throw statusError(url, res.status);
  }

  /** The upstream's credentials go to its own origin only, never to a host it redirects to. */
  #headersFor(url: URL): Record<string, string> {
    const { authorization } = this.endpoint;
    return authorization && url.origin === new URL(this.endpoint.url).origin ? { authorization } : {};
  }

  #classify(e: unknown, signal?: AbortSignal): UpstreamError {
    if (e instanceof UpstreamError) return e;
    if (e instanceof DownloadError) return new UpstreamError(DOWNLOAD_FAILURES[e.failure], `${this.endpoint.url}: ${e.message}`);
    if (signal?.aborted) return new UpstreamError('timeout', `${this.endpoint.url}: no answer within ${this.limits.timeoutMs} ms`);
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const code = (e as { code?: string }).code;
    return new UpstreamError('unreachable', `${this.endpoint.url}: ${cause?.code ?? cause?.message ?? code ?? (e as Error).message}`);
  }
}

const MAX_REDIRECTS = 10;
const DOWNLOAD_FAILURES: Record<DownloadFailure, UpstreamFailure> = { timeout: 'timeout', unreachable: 'unreachable', protocol: 'bad_response' };

function statusError(url: string, status: number): UpstreamError {
  if (status >= 500) return new UpstreamError('server_error', `${url}: HTTP ${status}`);
  if (status === 401 || status === 403) return new UpstreamError('denied', `${url}: HTTP ${status} (check the upstream's credentials)`);
  return new UpstreamError('bad_response', `${url}: HTTP ${status}`);
}
