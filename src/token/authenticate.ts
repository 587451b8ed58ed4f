import type { TokenAuthority } from './authority.ts';
import { TokenError } from './errors.ts';
import { extractToken } from './header.ts';
import { Principal } from './principal.ts';
import type { RevocationList } from './revocation.ts';

/**
 * Authorization header → Principal. No header means anonymous (public caches
 * still work); a bad or revoked token is a TokenError (401). If the revocation
 * store is unavailable its plain Error propagates (503, never a silent accept).
 */
export async function authenticate(
  authority: TokenAuthority,
  revocations: RevocationList,
  authorizationHeader: string | undefined,
): Promise<Principal> {
  const token = extractToken(authorizationHeader);
  if (token === undefined) return Principal.anonymous();
  const principal = await authority.verify(token);
  if (await revocations.isRevoked(principal.jti)) throw new TokenError('token has been revoked');
  return principal;
}
