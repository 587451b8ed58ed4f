import { TokenError } from './errors.ts';

/** Cache names, as in Attic plus `.`: 1-50 chars, no leading punctuation. `+` separates namespaces (`alice+ci`). */
export const CACHE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,49}$/;

/** Same alphabet plus `*` (any run of characters, possibly empty), which may also lead. */
export const CACHE_PATTERN_RE = /^[A-Za-z0-9*][A-Za-z0-9._+*-]{0,49}$/;

export function isValidCacheName(name: unknown): name is string {
  return typeof name === 'string' && CACHE_NAME_RE.test(name);
}

export function isValidCachePattern(pattern: string): boolean {
  return CACHE_PATTERN_RE.test(pattern);
}

export function assertValidCachePattern(pattern: string): void {
  if (!isValidCachePattern(pattern)) {
    throw new TokenError(`invalid cache pattern '${pattern.slice(0, 64)}': expected 1-50 of [A-Za-z0-9._+-*], not starting with . _ + or -`);
  }
}

export const isWildcard = (pattern: string): boolean => pattern.includes('*');

/** Number of literal characters: the resolution rule prefers the pattern that pins down the most of the name. */
export const specificity = (pattern: string): number => pattern.length - pattern.split('*').length + 1;

/**
 * Most specific first, ties by code-unit order of the pattern string, so the
 * winner never depends on the order of keys in the token.
 */
export function compareSpecificity(a: string, b: string): number {
  return specificity(b) - specificity(a) || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * Glob match with `*` only. Iterative with single-star backtracking, so the
 * cost is O(pattern × name) even for `*a*a*a*...` (a regex could blow up).
 */
export function matchesPattern(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let starP = -1;
  let starN = 0;
  while (n < name.length) {
    if (p < pattern.length && pattern[p] === '*') {
      starP = p++;
      starN = n;
    } else if (p < pattern.length && pattern[p] === name[n]) {
      p++;
      n++;
    } else if (starP >= 0) {
      p = starP + 1;
      n = ++starN;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}
