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
  | 'timeout'
  | 'too_many_requests'
  | 'unavailable';

export class LoftError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
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
/** `cause` is logged, never answered: it may name storage keys or hosts. */
export const unavailable = (msg: string, cause?: unknown) => new LoftError('unavailable', msg, { cause });
export const tooLarge = (msg: string) => new LoftError('payload_too_large', msg);
export const tooSlow = (msg: string) => new LoftError('timeout', msg);
/** Back-pressure: the caller should retry after `retryAfterSeconds`. */
export class TooManyRequestsError extends LoftError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('too_many_requests', message);
  }
}

/** Longest piece of client input quoted back in an error message (and so in the log). */
export const MAX_EXCERPT = 100;

/** Client input as quoted in messages: anything longer is cut, with its full length said. */
export function excerpt(input: string): string {
  return input.length <= MAX_EXCERPT ? input : `${input.slice(0, MAX_EXCERPT)}… (${input.length} characters)`;
}
