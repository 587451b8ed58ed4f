import http from 'node:http';
import https from 'node:https';
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
   * Opens a NAR file (`URL:` of a narinfo, relative to the cache URL): its length when the
   * upstream says it, and the body, yielded as it arrives; a silence longer than the timeout
   * aborts it, and a body shorter than its length is an error. The slot is held until the body
   * ends or the consumer stops. Downloaded with node:http(s) rather than fetch: its socket
   * Buffers go on as they are, where a web stream costs the event loop about as much again.
   */
  async nar(fileUrl: string): Promise<{ length?: number; body: AsyncGenerator<Buffer> }> {
    const release = await this.#slots.acquire();
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.limits.timeoutMs);
    let res: http.IncomingMessage;
    try {
      res = await this.#open(new URL(fileUrl, `${this.endpoint.url}/`), abort.signal);
      if (res.statusCode === 404 || res.statusCode === 410) {
        res.resume();
        throw new UpstreamError('bad_response', `${fileUrl} is missing upstream (HTTP ${res.statusCode})`);
      }
    } catch (e) {
      clearTimeout(timer);
      release();
      throw this.#classify(e, abort.signal);
    }
    const self = this;
    async function* body(): AsyncGenerator<Buffer> {
      let complete = false;
      try {
        for await (const piece of res as AsyncIterable<Buffer>) {
          timer.refresh();
          yield piece;
        }
        if (!res.complete) throw new Error('the connection closed before the end of the body');
        complete = true;
      } catch (e) {
        throw self.#classify(e, abort.signal);
      } finally {
        clearTimeout(timer);
        if (!complete) abort.abort(); // a consumer that stopped early: close the connection
        release();
      }
    }
    timer.refresh();
    const length = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
    return { length: Number.isSafeInteger(length) ? length : undefined, body: body() };
  }

  readonly #agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

  /** A GET with node:http(s), following redirects; resolves with a 2xx, 404 or 410 response. */
  #open(url: URL, signal: AbortSignal, redirects = 0): Promise<http.IncomingMessage> {
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') return Promise.reject(new UpstreamError('bad_response', `${url.href}: not an http(s) URL`));
    const headers: Record<string, string> = {};
    if (this.endpoint.authorization && url.origin === new URL(this.endpoint.url).origin) headers.authorization = this.endpoint.authorization;
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).get(url, { headers, signal, agent: secure ? this.#agents.https : this.#agents.http }, (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          if (redirects >= MAX_REDIRECTS) reject(new UpstreamError('bad_response', `${url.href}: more than ${MAX_REDIRECTS} redirects`));
          else resolve(this.#open(new URL(res.headers.location, url), signal, redirects + 1));
          return;
        }
        if ((status >= 200 && status < 300) || status === 404 || status === 410) return resolve(res);
        res.resume();
        reject(statusError(url.href, status));
      });
      req.on('error', reject);
    });
  }

  async #get(url: string, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.endpoint.authorization && new URL(url).origin === new URL(this.endpoint.url).origin) {
      headers.authorization = this.endpoint.authorization;
    }
    const res = await fetch(url, { headers, signal, redirect: 'follow' });
    if (res.ok || res.status === 404 || res.status === 410) return res;
    await res.body?.cancel();
    throw statusError(url, res.status);
  }

  #classify(e: unknown, signal: AbortSignal): UpstreamError {
    if (e instanceof UpstreamError) return e;
    if (signal.aborted) return new UpstreamError('timeout', `${this.endpoint.url}: no answer within ${this.limits.timeoutMs} ms`);
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const code = (e as { code?: string }).code;
    return new UpstreamError('unreachable', `${this.endpoint.url}: ${cause?.code ?? cause?.message ?? code ?? (e as Error).message}`);
  }
}

const MAX_REDIRECTS = 10;

function statusError(url: string, status: number): UpstreamError {
  if (status >= 500) return new UpstreamError('server_error', `${url}: HTTP ${status}`);
  if (status === 401 || status === 403) return new UpstreamError('denied', `${url}: HTTP ${status} (check the upstream's credentials)`);
  return new UpstreamError('bad_response', `${url}: HTTP ${status}`);
}
