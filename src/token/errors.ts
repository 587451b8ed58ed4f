/**
 * Every way a token (or an Authorization header) can be unacceptable. The
 * server maps this one class to 401; messages are safe to show clients.
 */
export class TokenError extends Error {
  override name = 'TokenError';
}
