import { Command } from 'commander';
import { decodeJwt } from 'jose';
import { loadConfig } from '../../server/config.ts';
import { LOFT_CLAIM, type Permission } from '../../token/index.ts';
import { defaultServerFromConfigSync } from '../config.ts';

/** Environment that points at a server's own config: `loft token` then works offline, like atticadm. */
const OFFLINE_ENV = ['LOFT_CONFIG', 'LOFT_TOKEN_HS256_SECRET', 'LOFT_DATA_DIR'] as const;

/** CLI flag → permission; each flag takes a cache pattern and may repeat. */
const GRANT_FLAGS: Array<[string, Permission]> = [
  ['pull', 'pull'],
  ['push', 'push'],
  ['delete', 'delete'],
  ['create-cache', 'create_cache'],
  ['configure-cache', 'configure_cache'],
  ['configure-retention', 'configure_retention'],
  ['pin', 'pin'],
  ['destroy-cache', 'destroy_cache'],
];

interface ModeOptions {
  serverConfig?: string;
  endpoint?: string;
  token?: string;
}

interface CreateOptions extends ModeOptions {
  sub: string;
  validity: string;
  admin?: boolean;
  dumpClaims?: boolean;
  [grant: string]: unknown;
}

/** `loft token …`, parsed from the arguments after `token`. */
export async function runTokenCommand(args: string[]): Promise<void> {
  await tokenCommand().parseAsync(args, { from: 'user' });
}

function tokenCommand(): Command {
  const cmd = new Command('loft token').description(
    'Manage access tokens: offline from the server config (--server-config, LOFT_CONFIG, LOFT_DATA_DIR or ' +
      'LOFT_TOKEN_HS256_SECRET), else through the API of --endpoint/LOFT_SERVER with an admin --token/LOFT_TOKEN',
  );

  const create = withModeOptions(cmd.command('create').description('issue a token; prints it on stdout'))
    .requiredOption('--sub <sub>', 'who the token is for (recorded as the uploader)')
    .requiredOption('--validity <duration>', 'how long it is valid, e.g. 90d, 12h, 1y')
    .option('--admin', 'may manage tokens (grants nothing on caches)')
    .option('--dump-claims', 'also print the claims as JSON on stderr');
  for (const [flag, perm] of GRANT_FLAGS) {
    create.option(`--${flag} <pattern>`, `grant ${perm} on caches matching the pattern (repeatable)`, collect);
  }
  create.action(async (opts: CreateOptions) => {
    const caches = grantsOf(opts);
    if (Object.keys(caches).length === 0 && !opts.admin) {
      throw new Error('the token would grant nothing: give at least one of --pull, --push, … or --admin');
    }
    const request = { sub: opts.sub, validity: opts.validity, caches, admin: opts.admin === true };
    let token: string;
    if (isOffline(opts)) {
      const { createTokenOffline } = await import('../../server/admin/tokens.ts');
      token = (await createTokenOffline(await loadConfig(opts.serverConfig), request)).token;
    } else {
      token = (await createTokenOnline(apiOf(opts), request)).token;
    }
    process.stdout.write(`${token}\n`);
    if (opts.dumpClaims) process.stderr.write(`${JSON.stringify(decodeJwt(token), null, 2)}\n`);
  });

  withModeOptions(cmd.command('revoke').description('revoke a token by its id (jti)'))
    .argument('<jti>', 'the token id')
    .action(async (jti: string, opts: ModeOptions) => {
      if (isOffline(opts)) {
        const { revokeTokenOffline } = await import('../../server/admin/tokens.ts');
        await revokeTokenOffline(await loadConfig(opts.serverConfig), jti);
      } else {
        await revokeTokenOnline(apiOf(opts), jti);
      }
      process.stdout.write(`revoked ${jti}\n`);
    });

  cmd
    .command('list')
    .description('list issued tokens (through the API only)')
    .option('--endpoint <url>', 'server URL (default: $LOFT_SERVER)')
    .option('--token <token>', 'admin token (default: $LOFT_TOKEN)')
    .option('--json', 'print the API answer as JSON')
    .action(async (opts: ModeOptions & { json?: boolean }) => {
      const tokens = await listTokensOnline(apiOf(opts));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(tokens, null, 2)}\n`);
        return;
      }
      for (const t of tokens) {
        const state = t.revoked_at ? `revoked ${t.revoked_at}` : `expires ${t.expires_at}`;
        const access = (t.claims as Record<string, unknown>)[LOFT_CLAIM] ?? t.claims;
        process.stdout.write(`${t.jti}\t${t.sub}\t${state}\t${JSON.stringify(access)}\n`);
      }
    });
  return cmd;
}

function withModeOptions(c: Command): Command {
  return c
    .option('--server-config <file>', 'work offline with this server config (TOML), no server needed')
    .option('--endpoint <url>', 'server URL (default: $LOFT_SERVER)')
    .option('--token <token>', 'admin token for the API (default: $LOFT_TOKEN)');
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

function grantsOf(opts: CreateOptions): Record<string, Permission[]> {
  const caches: Record<string, Permission[]> = {};
  for (const [flag, perm] of GRANT_FLAGS) {
    const key = flag.replace(/-(.)/g, (_, c: string) => c.toUpperCase());
    for (const pattern of (opts[key] as string[] | undefined) ?? []) (caches[pattern] ??= []).push(perm);
  }
  return caches;
}

/** An explicit --endpoint wins over offline settings inherited from the environment. */
function isOffline(opts: ModeOptions): boolean {
  if (opts.serverConfig !== undefined) {
    if (opts.endpoint !== undefined) throw new Error('give either --server-config (offline) or --endpoint (API), not both');
    return true;
  }
  return opts.endpoint === undefined && OFFLINE_ENV.some((k) => process.env[k]);
}

// The HTTP calls, kept together so the client library can take them over.

interface Api {
  endpoint: string;
  token: string;
}

interface TokenListEntry {
  jti: string;
  sub: string;
  claims: unknown;
  created_by: string | null;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
}

function apiOf(opts: ModeOptions): Api {
  // Without --endpoint and LOFT_SERVER: the default server of `loft login` (its token unless given).
  const saved = (opts.endpoint ?? process.env.LOFT_SERVER) ? undefined : defaultServerFromConfigSync();
  const endpoint = opts.endpoint ?? process.env.LOFT_SERVER ?? saved?.endpoint;
  const token = opts.token ?? process.env.LOFT_TOKEN ?? saved?.token;
  if (!endpoint) throw new Error('no server: pass --endpoint URL or set LOFT_SERVER, or run `loft login` (or use --server-config FILE offline)');
  if (!token) throw new Error('no admin token: pass --token TOKEN or set LOFT_TOKEN');
  return { endpoint: endpoint.replace(/\/+$/, ''), token };
}

async function call(api: Api, method: string, path: string, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${api.endpoint}${path}`, {
      method,
      headers: { authorization: `Bearer ${api.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    const cause = (e as Error & { cause?: Error }).cause;
    throw new Error(`cannot reach ${api.endpoint}: ${cause?.message ?? (e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    let message = text.slice(0, 500);
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // not JSON: keep the raw text
    }
    throw new Error(`${method} ${path}: ${res.status} ${message}`);
  }
  return text ? JSON.parse(text) : undefined;
}

function createTokenOnline(api: Api, request: { sub: string; validity: string; caches: Record<string, Permission[]>; admin: boolean }) {
  return call(api, 'POST', '/_api/v1/tokens', request) as Promise<{ token: string; jti: string; expires_at: string }>;
}

async function listTokensOnline(api: Api): Promise<TokenListEntry[]> {
  return ((await call(api, 'GET', '/_api/v1/tokens')) as { tokens: TokenListEntry[] }).tokens;
}

async function revokeTokenOnline(api: Api, jti: string): Promise<void> {
  await call(api, 'POST', `/_api/v1/tokens/${encodeURIComponent(jti)}/revoke`);
}
