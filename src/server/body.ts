import { Transform, type Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { badRequest, tooLarge } from '../core/errors.ts';

/**
 * The request body as a stream that fails when the client stops sending for
 * `idleMs` (Nix 2.8 retries a failed PUT with a Content-Length but no body)
 * and when it ends short of its Content-Length.
 */
export function bodyStream(req: FastifyRequest, idleMs: number): Readable {
  const expected = Number(req.headers['content-length'] ?? NaN);
  let received = 0;
  let lastDataAt = Date.now();
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
  // Idle only counts while we are waiting for the client: when the consumer is
  // slow (data buffered here), a quiet socket is our backpressure, not a stall.
  const timer = setInterval(() => {
    const waiting = guard.readableLength === 0 && guard.writableLength === 0;
    if (waiting && Date.now() - lastDataAt > idleMs) {
      // The error response is still sent (with Connection: close); the socket is not cut here.
      guard.destroy(badRequest(`request body stalled: no data for ${idleMs} ms after ${received} bytes`));
    }
  }, Math.max(10, Math.min(idleMs / 4, 1000)));
  timer.unref();
  req.raw.on('aborted', () => {
    guard.destroy(badRequest(`request body ended after ${received} of ${expected} bytes (client went away)`));
  });
  req.raw.on('error', (e) => guard.destroy(e));
  guard.on('close', () => clearInterval(timer));
  req.raw.pipe(guard);
  return guard;
}

/** Reads a small body (narinfo, metadata) whole, refusing more than `limit` bytes. */
export async function readSmallBody(req: FastifyRequest, limit: number, idleMs: number): Promise<Buffer> {
  if (typeof req.body === 'string') return Buffer.from(req.body);
  if (Buffer.isBuffer(req.body)) return req.body;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw tooLarge(`body of ${declared} bytes exceeds the ${limit}-byte limit`);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const piece of bodyStream(req, idleMs)) {
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
