import { decodeBase64Strict } from './base64.ts';
import { TokenError } from './errors.ts';

/**
 * The token from an Authorization header: `Bearer <token>`, or
 * `Basic base64(user:token)` because Nix (netrc via curl) only sends Basic;
 * the user part is ignored. Undefined when there is no header.
 */
export function extractToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const m = /^\s*([A-Za-z]+) +(\S+)\s*$/.exec(authorization);
  if (!m) throw new TokenError('malformed Authorization header: expected "Bearer <token>" or "Basic <credentials>"');
  const [, scheme, value] = m;
  switch (scheme.toLowerCase()) {
    case 'bearer':
      return value;
    case 'basic':
      return fromBasic(value);
    default:
      throw new TokenError(`unsupported Authorization scheme '${scheme.slice(0, 32)}' (use Bearer or Basic)`);
  }
}

function fromBasic(credentials: string): string {
  const decoded = decodeBase64Strict(credentials)?.toString('utf8');
  if (decoded === undefined) throw new TokenError('malformed Basic credentials: not valid base64');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new TokenError("malformed Basic credentials: expected 'user:password'");
  const token = decoded.slice(colon + 1);
  if (token === '') throw new TokenError('malformed Basic credentials: the password (token) is empty');
  return token;
}
