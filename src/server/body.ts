import { Transform, type Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { badRequest, tooLarge, tooSlow } from '../core/errors.ts';

/** How slow a client may send a body (config: body_idle_timeout_ms, min_body_rate). */
export interface BodyPace {
  /** No byte for this long fails the body. */
  bodyIdleTimeoutMs: number;
  /** Bytes per second the body must average once BODY_RATE_GRACE_MS have passed; 0 = no minimum. */
  minBodyRate: number;
}

/** A body's first seconds are not held to the rate (TCP slow start, a client computing its first chunk). */
export const BODY_RATE_GRACE_MS = 10_000;

/**
 * The request body as a stream that fails when the client stops sending for
 * `bodyIdleTimeoutMs` (Nix 2.8 retries a failed PUT with a Content-Length but no body),
 * trickles slower than `minBodyRate`, or ends short of its Content-Length.
 */
export function bodyStream(req: FastifyRequest, pace: BodyPace): Readable {
  return pacedBody(req, req.raw, pace);
}

/**
 * The watchdog of bodyStream around any source of the request's bytes (also fastify's payload in
 * the preParsing hook, so JSON bodies are held to the same pace before the parser sees them).
 */
export function pacedBody(req: FastifyRequest, source: Readable, pace: BodyPace): Transform {
  const expected = Number(req.headers['content-length'] ?? NaN);
  const idleMs = pace.bodyIdleTimeoutMs;
  let received = 0;
  const startedAt = Date.now();
  let lastDataAt = startedAt;
  /** Time spent waiting on our own consumer (backpressure) is not the client's. */
  let stalledByUs = 0;
  const guard = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      received += chunk.length;
      lastDataAt = Date.now();
      cb(null, chunk);
    },
    flush(cb) {
      clearInterval(timer);
      if (Number.isFinite(expected) && received !== expected) {
        cb(badRequest(`request body ended after ${received} of ${expected} bytes`));
      } else cb();
    },
  });
  const tickMs = Math.max(10, Math.min(idleMs / 4, 1000));
  // Idle only counts while we are waiting for the client: when the consumer is
  // slow (data buffered here), a quiet socket is our backpressure, not a stall.
  const timer = setInterval(() => {
    const waiting = guard.readableLength === 0 && guard.writableLength === 0;
    if (!waiting) {
      stalledByUs += tickMs;
      return;
    }
    const now = Date.now();
    // The error response is still sent (with Connection: close); the socket is not cut here.
    if (now - lastDataAt > idleMs) {
      guard.destroy(badRequest(`request body stalled: no data for ${idleMs} ms after ${received} bytes`));
      return;
    }
    const clientMs = now - startedAt - stalledByUs;
    if (pace.minBodyRate > 0 && clientMs > BODY_RATE_GRACE_MS && (received * 1000) / clientMs < pace.minBodyRate) {
      guard.destroy(tooSlow(`request body too slow: ${received} bytes in ${Math.round(clientMs / 1000)} s, the minimum is ${pace.minBodyRate} bytes/s`));
    }
  }, tickMs);
  timer.unref();
  req.raw.on('aborted', () => {
    guard.destroy(badRequest(`request body ended after ${received} of ${expected} bytes (client went away)`));
  });
  source.on('error', (e) => guard.destroy(e));
  guard.on('close', () => clearInterval(timer));
  source.pipe(guard);
  return guard;
}

/** Reads a small body (narinfo, metadata) whole, refusing more than `limit` bytes. */
export async function readSmallBody(req: FastifyRequest, limit: number, pace: BodyPace): Promise<Buffer> {
  if (typeof req.body === 'string') return Buffer.from(req.body);
  if (Buffer.isBuffer(req.body)) return req.body;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw tooLarge(`body of ${declared} bytes exceeds the ${limit}-byte limit`);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const piece of bodyStream(req, pace)) {
    size += piece.length;
    if (size > limit) throw tooLarge(`body exceeds the ${limit}-byte limit`);
    parts.push(piece as Buffer);
  }
  return Buffer.concat(parts);
}

export function requireBody(buf: Buffer, what: string): Buffer {
  if (buf.length === 0) throw badRequest(`empty ${what}`);
  return buf;
}
