import type { LoftClient } from '../client/http.ts';

/** What every client command gets: where to send requests, and where to print. */
export interface CliContext {
  verbose: boolean;
  /** Machine-readable output requested (`--json`). */
  json: boolean;
  /**
   * Resolves `[SERVER:]CACHE` against the config file and the environment
   * (LOFT_SERVER / LOFT_TOKEN work without any config file).
   */
  resolveCache(ref: string): Promise<ResolvedCache>;
  /** The default server (or `name`), for commands that take no cache. */
  resolveServer(name?: string): Promise<ResolvedServer>;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface ResolvedServer {
  /** Name in the config file, or `env` when it came from LOFT_SERVER. */
  name: string;
  endpoint: string;
  token?: string;
  client: LoftClient;
}

export interface ResolvedCache extends ResolvedServer {
  cache: string;
}
