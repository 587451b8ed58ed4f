// The client config, `$XDG_CONFIG_HOME/loft/config.toml` (mode 0600), and how a server is chosen:
// `SERVER:` in a cache reference, else LOFT_SERVER, else `default-server`, else the only/first server.
// LOFT_TOKEN overrides the token of whichever server is used, so CI needs no config file at all.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'smol-toml';
import { CliError, UsageError } from './errors.ts';

export interface ServerEntry {
  endpoint: string;
  token?: string;
  /** Read and trimmed when the server is used (relative paths are relative to the config file). */
  tokenFile?: string;
}

export interface ClientConfig {
  defaultServer?: string;
  servers: Record<string, ServerEntry>;
}

/** The server a command talks to, token resolved. `name` is `env` when it came from LOFT_SERVER. */
export interface ServerTarget {
  name: string;
  endpoint: string;
  token?: string;
}

type Env = NodeJS.ProcessEnv;

export function xdgConfigHome(env: Env = process.env): string {
  const x = env.XDG_CONFIG_HOME;
  return x && path.isAbsolute(x) ? x : path.join(env.HOME || os.homedir(), '.config');
}

export function configPath(env: Env = process.env): string {
  return path.join(xdgConfigHome(env), 'loft', 'config.toml');
}

function fromToml(text: string, file: string): ClientConfig {
  let raw: Record<string, unknown>;
  try {
    raw = parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new CliError(`cannot parse ${file}: ${(e as Error).message.split('\n')[0]}`, undefined, { cause: e });
  }
  const servers: Record<string, ServerEntry> = {};
  const table = (raw.servers ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, s] of Object.entries(table)) {
    if (typeof s?.endpoint !== 'string') throw new CliError(`${file}: [servers.${name}] has no endpoint`);
    servers[name] = {
      endpoint: s.endpoint,
      token: typeof s.token === 'string' ? s.token : undefined,
      tokenFile: typeof s['token-file'] === 'string' ? s['token-file'] : undefined,
    };
  }
  const def = raw['default-server'];
  return { defaultServer: typeof def === 'string' ? def : undefined, servers };
}

function toToml(c: ClientConfig): string {
  const servers: Record<string, Record<string, string>> = {};
  for (const [name, s] of Object.entries(c.servers)) {
    servers[name] = { endpoint: s.endpoint };
    if (s.tokenFile !== undefined) servers[name]['token-file'] = s.tokenFile;
    else if (s.token !== undefined) servers[name].token = s.token;
  }
  const doc: Record<string, unknown> = {};
  if (c.defaultServer !== undefined) doc['default-server'] = c.defaultServer;
  doc.servers = servers;
  return `# Written by \`loft login\`. Keep this file private (mode 0600): it holds tokens.\n${stringify(doc)}\n`;
}

/** The config, or an empty one when the file does not exist. */
export async function loadClientConfig(file = configPath()): Promise<ClientConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { servers: {} };
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`, undefined, { cause: e });
  }
  return fromToml(text, file);
}

/** Synchronous variant, for callers that cannot await (returns an empty config when absent). */
export function loadClientConfigSync(file = configPath()): ClientConfig {
  try {
    return fromToml(readFileSync(file, 'utf8'), file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { servers: {} };
    throw e;
  }
}

/** Writes the config atomically with mode 0600, creating its directory with mode 0700. */
export async function saveClientConfig(c: ClientConfig, file = configPath()): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, toToml(c), { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

function readTokenFile(file: string, configFile: string): string {
  const p = path.resolve(path.dirname(configFile), file);
  try {
    return readFileSync(p, 'utf8').trim();
  } catch (e) {
    throw new CliError(`cannot read the token file ${p}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

function entryToken(s: ServerEntry, configFile: string): string | undefined {
  if (s.tokenFile !== undefined) return readTokenFile(s.tokenFile, configFile);
  return s.token;
}

/** Picks the server for a command (see the file comment); `name` is the `SERVER:` of a cache reference. */
export function pickServer(c: ClientConfig, name: string | undefined, env: Env = process.env, file = configPath(env)): ServerTarget {
  const envToken = env.LOFT_TOKEN || undefined;
  if (name !== undefined) {
    const s = c.servers[name];
    if (!s) {
      const known = Object.keys(c.servers);
      throw new UsageError(
        `no server named '${name}' in ${file}` + (known.length ? ` (known: ${known.join(', ')})` : ' (run `loft login NAME URL TOKEN`)'),
      );
    }
    return { name, endpoint: trimEndpoint(s.endpoint), token: envToken ?? entryToken(s, file) };
  }
  if (env.LOFT_SERVER) return { name: 'env', endpoint: checkEndpoint(env.LOFT_SERVER, 'LOFT_SERVER'), token: envToken };
  const names = Object.keys(c.servers);
  const chosen = c.defaultServer !== undefined && c.servers[c.defaultServer] ? c.defaultServer : names[0];
  if (chosen === undefined) {
    throw new UsageError('no server configured: run `loft login NAME URL [TOKEN]`, or set LOFT_SERVER (and LOFT_TOKEN)');
  }
  const s = c.servers[chosen];
  return { name: chosen, endpoint: trimEndpoint(s.endpoint), token: envToken ?? entryToken(s, file) };
}

export async function resolveServerTarget(name?: string, env: Env = process.env): Promise<ServerTarget> {
  const file = configPath(env);
  return pickServer(await loadClientConfig(file), name, env, file);
}

/** The default server of the config file alone (no environment), or undefined: for `loft token`'s online mode. */
export function defaultServerFromConfigSync(env: Env = process.env): ServerTarget | undefined {
  const file = configPath(env);
  const c = loadClientConfigSync(file);
  if (Object.keys(c.servers).length === 0) return undefined;
  return pickServer(c, undefined, { HOME: env.HOME, XDG_CONFIG_HOME: env.XDG_CONFIG_HOME }, file);
}

function trimEndpoint(url: string): string {
  return url.replace(/\/+$/, '');
}

/** An http(s) URL without a trailing slash, or a UsageError naming `what`. */
export function checkEndpoint(url: string, what = 'URL'): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`${what} '${url}' is not a URL (expected e.g. https://cache.example.com)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${what} '${url}' must be an http:// or https:// URL`);
  return trimEndpoint(url);
}
