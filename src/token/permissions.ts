/**
 * What a token may do on a cache. Token management (`admin`) is deliberately
 * not one of these: it is global, carried as a top-level flag (see claims.ts),
 * so it cannot be granted by accident through a wildcard pattern.
 */
export type Permission =
  | 'pull'
  | 'push'
  | 'delete'
  | 'create_cache'
  | 'configure_cache'
  | 'configure_retention'
  | 'pin'
  | 'destroy_cache';

/** Canonical order; issued tokens list permissions in this order. */
export const ALL_PERMISSIONS: readonly Permission[] = [
  'pull',
  'push',
  'delete',
  'create_cache',
  'configure_cache',
  'configure_retention',
  'pin',
  'destroy_cache',
];

const KNOWN: ReadonlySet<string> = new Set(ALL_PERMISSIONS);

export function isPermission(value: unknown): value is Permission {
  return typeof value === 'string' && KNOWN.has(value);
}
