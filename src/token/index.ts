/** Public surface of the token module, for the HTTP server and the CLI. */
export { authenticate } from './authenticate.ts';
export { DEFAULT_MAX_VALIDITY_SECONDS, TokenAuthority, type IssueOptions, type IssuedToken, type TokenConfig } from './authority.ts';
export { LOFT_CLAIM, MAX_PATTERNS, type LoftAccess, type LoftClaims } from './claims.ts';
export { formatDuration, parseDuration } from './duration.ts';
export { TokenError } from './errors.ts';
export { extractToken } from './header.ts';
export { generateHs256Secret, type TokenAlgorithm } from './keys.ts';
export { CACHE_NAME_RE, CACHE_PATTERN_RE, isValidCacheName, isValidCachePattern } from './patterns.ts';
export { ALL_PERMISSIONS, isPermission, type Permission } from './permissions.ts';
export { Principal } from './principal.ts';
export { CachedRevocationList, type CachedRevocationOptions, type RevocationList } from './revocation.ts';
