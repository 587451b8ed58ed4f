// `[SERVER:]CACHE` references (as in Attic): the server part names an entry of the client config.
import { UsageError } from './errors.ts';

export interface CacheRef {
  /** Undefined: the default server (or LOFT_SERVER). */
  server?: string;
  cache: string;
}

/** Cache and server names: 1-50 of [A-Za-z0-9._+-], starting with a letter or digit (the server's cache-name rule). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,49}$/;

export function isValidName(name: string): boolean {
  return NAME.test(name);
}

export function parseCacheRef(ref: string): CacheRef {
  const colon = ref.indexOf(':');
  const server = colon >= 0 ? ref.slice(0, colon) : undefined;
  const cache = colon >= 0 ? ref.slice(colon + 1) : ref;
  if (server !== undefined && !isValidName(server)) {
    throw new UsageError(`invalid cache reference '${ref}': '${server}' is not a valid server name (use [SERVER:]CACHE)`);
  }
  if (!isValidName(cache)) {
    throw new UsageError(
      `invalid cache reference '${ref}': '${cache}' is not a valid cache name (1-50 characters [A-Za-z0-9._+-], starting with a letter or digit)`,
    );
  }
  return { server, cache };
}

