import net from 'node:net';
import tls from 'node:tls';
import { endpointOf, proxyAuthorization } from './proxy.ts';

/**
 * One HTTP/1.1 GET whose body is read into a few recycled buffers: what the pull-through flow
 * downloads NAR files with. node:http (and fetch) allocate a new Buffer for every piece of a body;
 * on a server with a large heap, the garbage collections those allocations set off (V8 counts
 * them as external memory) cost about as much CPU as moving the bytes (docs/benchmarks.md,
 * "Upstream pull-through"). Here every piece of a plain TCP download is a view of a read buffer
 * that goes back to the download's own pool once the consumer releases it, and the socket stops
 * reading while MAX_HELD_BYTES of buffers are out: memory stays bounded, and nothing is allocated
 * per piece. A TLS download reads 'data' events instead, paused and resumed the same way: with
 * onread, a TLS socket that stops reading loses records it has decrypted but not handed over
 * (seen against nginx: the body ended early, or came out corrupt).
 *
 * The request is `Connection: close`, the response is framed by Content-Length, chunked
 * transfer coding, or the end of the connection (RFC 9112). Through an HTTP proxy, an http URL is
 * asked of the proxy (absolute form), an https one through a CONNECT tunnel. Narinfos, small and
 * many, are fetched with fetch() instead.
 */

/** What one read of a plain TCP socket fills at most: larger reads mean fewer reads and wakeups of the event loop. */
const READ_BUFFER_BYTES = 256 * 1024;
/** A TLS socket hands over one record, at most 16 KiB, per 'data' event. */
const TLS_PIECE_BYTES = 16 * 1024;
/** What the consumer may hold before the socket stops reading, per download. */
const MAX_HELD_BYTES = 4 * 1024 * 1024;
const MAX_HEAD_BYTES = 64 * 1024;
/** A chunk-size line, with its extensions, or a trailer line. */
const MAX_LINE_BYTES = 4096;
const CRLF = 0x0a;

export type DownloadFailure = 'timeout' | 'unreachable' | 'protocol';

export class DownloadError extends Error {
  constructor(
    readonly failure: DownloadFailure,
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}

export interface DownloadOptions {
  /** Request headers besides Host, Accept-Encoding and Connection. */
  headers?: Record<string, string>;
  /** Connecting, waiting for the response head, and any silence within the body longer than this fail the download. */
  timeoutMs: number;
  /** CA certificates to trust for https instead of the system's (tests). */
  ca?: string | Buffer;
  /** An http:// proxy to go through (see proxyFor). */
  proxy?: URL;
}

export interface Download {
  readonly status: number;
  /** Field names in lower case; repeated fields joined with ", ". */
  readonly headers: ReadonlyMap<string, string>;
  /** The body's length, when Content-Length frames it. */
  readonly length: number | undefined;
  /** The pieces the consumer may hold (not yet released) before the socket stops reading. */
  readonly maxPieces: number;
  /**
   * Reads the body (once): each piece goes to `onPiece` as a view of a read buffer that is reused
   * once `release` is called (call it exactly once). Resolves when the body is complete; rejects
   * when the connection fails, is silent for longer than the timeout, or ends before the body does.
   */
  read(onPiece: (piece: Buffer, release: () => void) => void): Promise<void>;
  /** Closes the connection; a read in progress rejects. */
  close(): void;
}

/** Sends the GET; resolves once the response head (of the final, non-1xx response) is in. */
export async function download(url: URL, opts: DownloadOptions): Promise<Download> {
  const tunnel = opts.proxy && url.protocol === 'https:' ? await openTunnel(opts.proxy, url, opts.timeoutMs) : undefined;
  return new HttpDownload(url, opts, tunnel).head;
}

/**
 * A read buffer and the references to it: the socket's, while it reads into it, and one per piece
 * not yet released. `pooled`: one of the download's own buffers, reused once free (not a 'data'
 * event's buffer, see #onData).
 */
interface Slab {
  bytes: Buffer;
  refs: number;
  pooled: boolean;
}

type Phase = 'head' | 'waiting' | 'body' | 'done' | 'failed';

class HttpDownload implements Download {
  status = 0;
  readonly headers = new Map<string, string>();
  length: number | undefined;
  readonly maxPieces: number;
  readonly head: Promise<Download>;

  readonly #socket: net.Socket;
  readonly #free: Slab[] = [];
  /** Slabs taken from the pool and not yet back. */
  #out = 0;
  /** The slab the socket reads into next. */
  #reading!: Slab;
  #phase: Phase = 'head';
  #headText = '';
  #decoder!: BodyDecoder;
  /** Body bytes that came with the head, before read() was called. */
  #early: { slab: Slab; bytes: Buffer } | undefined;
  #onPiece: ((piece: Buffer, release: () => void) => void) | undefined;
  #settleHead!: { resolve(d: Download): void; reject(e: Error): void };
  #settleBody: { resolve(): void; reject(e: Error): void } | undefined;
  /** Reading was stopped: the consumer holds too many slabs, or has not called read() yet. */
  #stopped = false;
  #failure: Error | undefined;
  /**
   * The connection ended before read() was called. A TLS socket ends even while paused once its
   * records are all handed over, and the whole body may have come with the head (#early).
   */
  #closedWhileWaiting = false;

  /** `tunnel`: for an https URL through a proxy, the CONNECT tunnel to its host (openTunnel). */
  constructor(url: URL, opts: DownloadOptions, tunnel?: net.Socket) {
    this.head = new Promise((resolve, reject) => (this.#settleHead = { resolve, reject }));
    const secure = url.protocol === 'https:';
    this.maxPieces = MAX_HELD_BYTES / (secure ? TLS_PIECE_BYTES : READ_BUFFER_BYTES);
    const { host, port } = endpointOf(url);
    const onread: net.OnReadOpts = { buffer: () => this.#take(), callback: (n: number) => this.#onRead(n) };
    const tlsOptions: tls.ConnectionOptions = { host, port, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'], ca: opts.ca };
    // An http URL through a proxy is asked of the proxy itself.
    const viaProxy = opts.proxy && !secure ? opts.proxy : undefined;
    if (secure) {
      this.#socket = tls.connect(tunnel ? { ...tlsOptions, socket: tunnel } : tlsOptions);
      this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    } else {
      this.#socket = net.connect({ ...(viaProxy ? endpointOf(viaProxy) : { host, port }), onread });
    }
    this.#socket.setTimeout(opts.timeoutMs, () => this.#fail(new DownloadError('timeout', `no answer from ${url.host} within ${opts.timeoutMs} ms`)));
    this.#socket.on('error', (e: NodeJS.ErrnoException) => this.#fail(new DownloadError('unreachable', `${url.host}: ${e.code ?? e.message}`, e.code)));
    this.#socket.on('end', () => this.#onEnd());
    this.#socket.on('close', () => {
      if (this.#phase === 'waiting') this.#closedWhileWaiting = true;
      else this.#fail(new DownloadError('unreachable', `${url.host} closed the connection`));
    });
    const headers = { ...opts.headers };
    const proxyAuth = viaProxy && proxyAuthorization(viaProxy);
    if (proxyAuth) headers['proxy-authorization'] = proxyAuth;
    const fields = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    const target = viaProxy ? `${url.origin}${url.pathname}${url.search}` : `${url.pathname}${url.search}`;
    this.#socket.write(`GET ${target} HTTP/1.1\r\nHost: ${url.host}\r\nAccept-Encoding: identity\r\nConnection: close\r\n${fields}\r\n`, 'latin1');
  }

  read(onPiece: (piece: Buffer, release: () => void) => void): Promise<void> {
    if (this.#onPiece) return Promise.reject(new Error('the body is read once'));
    this.#onPiece = onPiece;
    if (this.#phase === 'done') return Promise.resolve();
    if (this.#phase === 'failed') return Promise.reject(this.#failure);
    this.#phase = 'body';
    const done = new Promise<void>((resolve, reject) => (this.#settleBody = { resolve, reject }));
    const early = this.#early;
    this.#early = undefined;
    if (early) {
      this.#decode(early.slab, early.bytes);
      this.#unref(early.slab);
    }
    if (this.#phase === 'body' && this.#closedWhileWaiting) this.#onEnd();
    if (this.#phase === 'body') this.#resumeIfRoom();
    return done;
  }

  close(): void {
    this.#fail(new DownloadError('unreachable', 'the download was closed'));
  }

  #take(): Buffer {
    const slab = this.#free.pop() ?? { bytes: Buffer.allocUnsafeSlow(READ_BUFFER_BYTES), refs: 0, pooled: true };
    slab.refs = 1;
    this.#out++;
    this.#reading = slab;
    return slab.bytes;
  }

  #unref(slab: Slab): void {
    if (--slab.refs > 0) return;
    this.#out--;
    if (slab.pooled) this.#free.push(slab);
    if (this.#stopped && this.#phase === 'body') this.#resumeIfRoom();
  }

  #resumeIfRoom(): void {
    if (this.#out >= this.maxPieces || this.#socket.destroyed) return;
    this.#stopped = false;
    this.#socket.resume();
  }

  /** A piece of a TLS socket ('data' events): read as if into a slab of its own. */
  #onData(chunk: Buffer): void {
    this.#out++;
    this.#reading = { bytes: chunk, refs: 1, pooled: false };
    if (!this.#onRead(chunk.length)) this.#socket.pause();
  }

  /** One read of the socket: returns false to stop reading. */
  #onRead(n: number): boolean {
    const slab = this.#reading;
    const bytes = slab.bytes.subarray(0, n);
    try {
      if (this.#phase === 'head') this.#parseHead(slab, bytes);
      else if (this.#phase === 'body') this.#decode(slab, bytes);
      // 'done' or 'failed': bytes after the body (or a failure) are dropped
    } catch (e) {
      this.#fail(e as Error);
    }
    this.#unref(slab);
    this.#stopped = this.#phase === 'waiting' || (this.#phase === 'body' && this.#out >= this.maxPieces);
    return !this.#stopped && this.#phase !== 'done' && this.#phase !== 'failed';
  }

  #parseHead(slab: Slab, bytes: Buffer): void {
    const before = this.#headText.length;
    this.#headText += bytes.toString('latin1');
    for (;;) {
      const end = this.#headText.indexOf('\r\n\r\n', Math.max(0, before - 3));
      if (end < 0) {
        if (this.#headText.length > MAX_HEAD_BYTES) throw protocolError(`the response head exceeds ${MAX_HEAD_BYTES} bytes`);
        return;
      }
      const rest = bytes.subarray(end + 4 - before);
      this.#readHead(this.#headText.slice(0, end));
      if (this.status >= 100 && this.status < 200) {
        // an interim response (103 Early Hints, say): the real one follows
        this.headers.clear();
        this.#headText = '';
        if (rest.length === 0) return;
        return this.#parseHead(slab, rest);
      }
      this.#phase = 'waiting';
      this.#stopped = true;
      if (rest.length > 0 && !this.#decoder.finished) {
        slab.refs++;
        this.#early = { slab, bytes: rest };
      }
      if (this.#decoder.finished) this.#phase = 'done';
      this.#settleHead.resolve(this);
      if (this.#phase === 'done') this.#socket.destroy();
      return;
    }
  }

  #readHead(text: string): void {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]!);
    if (!m) throw protocolError(`not an HTTP/1.1 status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    this.status = Number(m[1]);
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) throw protocolError(`malformed header line ${JSON.stringify(line.slice(0, 80))}`);
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      const prior = this.headers.get(name);
      this.headers.set(name, prior === undefined ? value : `${prior}, ${value}`);
    }
    this.#decoder = this.#bodyDecoder();
  }

  #bodyDecoder(): BodyDecoder {
    if (this.status === 204 || this.status === 304 || (this.status >= 100 && this.status < 200)) return new LengthDecoder(0);
    const te = this.headers.get('transfer-encoding');
    if (te !== undefined) {
      const codings = te.split(',').map((c) => c.trim().toLowerCase());
      if (codings.at(-1) !== 'chunked' || codings.length > 1) throw protocolError(`unsupported Transfer-Encoding: ${te}`);
      return new ChunkedDecoder();
    }
    const cl = this.headers.get('content-length');
    if (cl === undefined) return new UntilCloseDecoder();
    const values = new Set(cl.split(',').map((v) => v.trim()));
    const [value] = values;
    if (values.size !== 1 || !/^\d{1,15}$/.test(value!)) throw protocolError(`invalid Content-Length: ${cl}`);
    this.length = Number(value);
    return new LengthDecoder(this.length);
  }

  #decode(slab: Slab, bytes: Buffer): void {
    this.#decoder.decode(bytes, (piece) => {
      slab.refs++;
      let released = false;
      this.#onPiece!(piece, () => {
        if (released) return;
        released = true;
        this.#unref(slab);
      });
    });
    if (this.#decoder.finished) {
      this.#phase = 'done';
      this.#socket.destroy();
      this.#settleBody!.resolve();
    }
  }

  #onEnd(): void {
    if (this.#phase === 'waiting') {
      this.#closedWhileWaiting = true;
      return;
    }
    if (this.#phase === 'body' && this.#decoder instanceof UntilCloseDecoder) {
      this.#phase = 'done';
      this.#settleBody!.resolve();
      this.#socket.destroy();
      return;
    }
    this.#fail(new DownloadError('unreachable', this.#phase === 'head' ? 'the connection closed before the response head' : 'the connection closed before the end of the body'));
  }

  #fail(e: Error): void {
    if (this.#phase === 'done' || this.#phase === 'failed') return;
    const phase = this.#phase;
    this.#phase = 'failed';
    this.#socket.destroy();
    if (this.#early) this.#unref(this.#early.slab);
    this.#early = undefined;
    this.#failure = e;
    if (phase === 'head') this.#settleHead.reject(e);
    else if (phase === 'body') this.#settleBody!.reject(e);
    // 'waiting': read() reports it
  }
}

/** A CONNECT tunnel through `proxy` to the URL's host and port (RFC 9110 §9.3.6). */
function openTunnel(proxy: URL, url: URL, timeoutMs: number): Promise<net.Socket> {
  const { host, port } = endpointOf(url);
  const target = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  const auth = proxyAuthorization(proxy);
  return new Promise((resolve, reject) => {
    const socket = net.connect(endpointOf(proxy));
    let head = '';
    const fail = (e: DownloadError) => {
      socket.destroy();
      reject(e);
    };
    const onError = (e: NodeJS.ErrnoException) => fail(new DownloadError('unreachable', `the proxy ${proxy.host}: ${e.code ?? e.message}`, e.code));
    const onClose = () => fail(new DownloadError('unreachable', `the proxy ${proxy.host} closed the connection`));
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEAD_BYTES) fail(protocolError(`the proxy's response head exceeds ${MAX_HEAD_BYTES} bytes`));
        return;
      }
      socket.off('data', onData).off('error', onError).off('close', onClose).setTimeout(0);
      const statusLine = head.slice(0, head.indexOf('\r\n'));
      if (!/^HTTP\/1\.[01] 200\b/.test(statusLine)) return fail(new DownloadError('unreachable', `the proxy ${proxy.host} refused the tunnel to ${target}: ${statusLine.slice(0, 80)}`));
      // the target speaks first only after the TLS ClientHello: nothing follows the head yet
      resolve(socket);
    };
    socket.setTimeout(timeoutMs, () => fail(new DownloadError('timeout', `no answer from the proxy ${proxy.host} within ${timeoutMs} ms`)));
    socket.on('error', onError).on('close', onClose).on('data', onData);
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth ? `Proxy-Authorization: ${auth}\r\n` : ''}\r\n`, 'latin1');
  });
}

function protocolError(message: string): DownloadError {
  return new DownloadError('protocol', message);
}

/** Cuts the body out of what the socket reads: `emit` gets each piece of it, in order. */
interface BodyDecoder {
  decode(bytes: Buffer, emit: (piece: Buffer) => void): void;
  readonly finished: boolean;
}

class LengthDecoder implements BodyDecoder {
  constructor(private remaining: number) {}
  get finished(): boolean {
    return this.remaining === 0;
  }
  decode(bytes: Buffer, emit: (piece: Buffer) => void): void {
    if (this.remaining === 0 || bytes.length === 0) return;
    const piece = bytes.length <= this.remaining ? bytes : bytes.subarray(0, this.remaining);
    this.remaining -= piece.length;
    emit(piece);
  }
}

class UntilCloseDecoder implements BodyDecoder {
  readonly finished = false;
  decode(bytes: Buffer, emit: (piece: Buffer) => void): void {
    if (bytes.length > 0) emit(bytes);
  }
}

/** RFC 9112 §7.1: size line (with extensions), data, CRLF, …, a 0-size chunk, trailer lines, an empty line. */
class ChunkedDecoder implements BodyDecoder {
  #state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  #line = '';
  #remaining = 0;

  get finished(): boolean {
    return this.#state === 'done';
  }

  decode(bytes: Buffer, emit: (piece: Buffer) => void): void {
    let i = 0;
    while (i < bytes.length && this.#state !== 'done') {
      if (this.#state === 'data') {
        const n = Math.min(this.#remaining, bytes.length - i);
        emit(bytes.subarray(i, i + n));
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = 'data-end';
        continue;
      }
      // a line: the chunk size, the CRLF after a chunk's data, or a trailer
      const nl = bytes.indexOf(CRLF, i);
      const end = nl < 0 ? bytes.length : nl;
      this.#line += bytes.toString('latin1', i, end);
      if (this.#line.length > MAX_LINE_BYTES) throw protocolError(`a chunked-body line exceeds ${MAX_LINE_BYTES} bytes`);
      i = end;
      if (nl < 0) break;
      i++;
      if (!this.#line.endsWith('\r')) throw protocolError('a chunked-body line does not end with CRLF');
      const line = this.#line.slice(0, -1);
      this.#line = '';
      this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    switch (this.#state) {
      case 'size': {
        const m = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line);
        if (!m) throw protocolError(`invalid chunk size line ${JSON.stringify(line.slice(0, 80))}`);
        this.#remaining = parseInt(m[1]!, 16);
        this.#state = this.#remaining === 0 ? 'trailer' : 'data';
        return;
      }
      case 'data-end':
        if (line !== '') throw protocolError('a chunk is longer than its size');
        this.#state = 'size';
        return;
      case 'trailer':
        if (line === '') this.#state = 'done';
        return;
    }
  }
}
