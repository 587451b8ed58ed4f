/**
 * Domain errors. Each carries a kind; the server maps kinds to HTTP statuses
 * in exactly one place (server/errors.ts). Messages are safe to show clients.
 */
export type ErrorKind =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media'
  | 'unavailable';

export class LoftError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'LoftError';
  }
}

export const badRequest = (msg: string) => new LoftError('bad_request', msg);
/** Expected on the hot read path (narinfo misses): built without capturing a stack, which costs more than the lookup. */
export const notFound = (msg: string) => {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new LoftError('not_found', msg);
  } finally {
    Error.stackTraceLimit = limit;
  }
};
export const conflict = (msg: string) => new LoftError('conflict', msg);
export const unauthorized = (msg: string) => new LoftError('unauthorized', msg);
export const forbidden = (msg: string) => new LoftError('forbidden', msg);
export const unavailable = (msg: string) => new LoftError('unavailable', msg);
export const tooLarge = (msg: string) => new LoftError('payload_too_large', msg);
