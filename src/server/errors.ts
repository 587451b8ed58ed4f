import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { LoftError, TooManyRequestsError, type ErrorKind } from '../core/errors.ts';

/** Messages may quote client input; none is answered or logged longer than this. */
const MAX_MESSAGE = 1000;
import { TokenError } from '../token/index.ts';
import { NixFormatError } from '../nix/errors.ts';
import { storageFault } from '../storage/faults.ts';

const STATUS: Record<ErrorKind, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media: 415,
  timeout: 408,
  too_many_requests: 429,
  unavailable: 503,
};

/**
 * The single mapping from errors to responses. Domain errors keep their
 * message; anything unexpected is logged and answered with a bare 500 so no
 * internal detail (SQL, paths) leaks.
 */
export function errorHandler(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void {
  let status: number;
  let code: string;
  let message = err.message;
  if (err instanceof LoftError) {
    status = STATUS[err.kind];
    code = err.kind;
    if (err.cause !== undefined) req.log.error({ err: err.cause }, err.message);
  } else if (err instanceof TokenError) {
    status = 401;
    code = 'unauthorized';
  } else if (err instanceof NixFormatError) {
    status = 400;
    code = 'bad_request';
  } else if (storageFault(err) === 'full') {
    status = 507;
    code = 'insufficient_storage';
    message = 'the server is out of storage space: nothing was stored; retry once space is freed';
    req.log.error({ err }, 'storage full');
  } else if (storageFault(err) === 'unavailable') {
    // Before the database check: a connection reset to S3 carries the same error codes.
    status = 503;
    code = 'unavailable';
    message = 'the storage is unavailable; retry later';
    req.log.error({ err }, 'storage unavailable');
  } else if (isDatabaseUnavailable(err)) {
    status = 503;
    code = 'unavailable';
    message = 'the database is unavailable; retry later';
    req.log.error({ err }, 'database unavailable');
  } else if ('statusCode' in err && typeof err.statusCode === 'number' && err.statusCode < 500) {
    status = err.statusCode; // fastify's own: validation, body limits, bad JSON
    code = status === 413 ? 'payload_too_large' : 'bad_request';
  } else {
    status = 500;
    code = 'internal';
    message = 'internal server error';
    req.log.error({ err }, 'request failed');
  }
  if (message.length > MAX_MESSAGE) message = `${message.slice(0, MAX_MESSAGE)}… (truncated)`;
  if (err instanceof TooManyRequestsError) reply.header('retry-after', String(err.retryAfterSeconds));
  // The challenge lets Nix send its netrc credentials; scripts (the dashboard) set X-Requested-With so the
  // browser shows its own sign-in form instead of a password prompt.
  if (status === 401 && req.headers['x-requested-with'] === undefined) reply.header('www-authenticate', 'Basic realm="loft", charset="UTF-8"');
  // The access line records the status; the reason is there for debugging.
  if (status < 500) req.log.debug({ status, reason: message }, 'request refused');
  // A refused upload: do not keep reading a body we will not use. Requests without a body (every
  // GET, e.g. a narinfo miss) keep their connection: Nix checks many paths on one.
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (hasBody && !req.raw.readableEnded) reply.header('connection', 'close');
  void reply.code(status).send({ error: code, message });
}

const DB_DOWN = new Set(['ECONNREFUSED', 'ECONNRESET', '57P01', '57P03', '08006', '08001', '08003', 'ETIMEDOUT']);

function isDatabaseUnavailable(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return (
    (typeof code === 'string' && DB_DOWN.has(code)) ||
    /Connection terminated|timeout exceeded when trying to connect|database is locked/.test(err.message)
  );
}
