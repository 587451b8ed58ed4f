// `loft login NAME URL [TOKEN] [--set-default] [--token-file FILE]`: checks the token against the
// server (GET /_api/v1/caches) and only then records the server in the client config.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CliContext } from '../context.ts';
import { LoftApiError, LoftClient } from '../../client/http.ts';
import { listCaches } from '../../client/admin.ts';
import { checkEndpoint, configPath, loadClientConfig, saveClientConfig, type ServerEntry } from '../config.ts';
import { isValidName } from '../cache-ref.ts';
import { CliError, UsageError } from '../errors.ts';
import { loginDone } from '../output/messages.ts';

export interface LoginOptions {
  setDefault?: boolean;
  tokenFile?: string;
}

export async function loginCommand(name: string, url: string, token: string | undefined, opts: LoginOptions, ctx: CliContext): Promise<void> {
  if (!isValidName(name)) {
    throw new UsageError(`invalid server name '${name}': use 1-50 characters [A-Za-z0-9._+-], starting with a letter or digit`);
  }
  const endpoint = checkEndpoint(url);
  if (token !== undefined && opts.tokenFile !== undefined) throw new UsageError('give either TOKEN or --token-file, not both');
  const entry: ServerEntry = { endpoint };
  let effective = token;
  if (opts.tokenFile !== undefined) {
    const file = path.resolve(opts.tokenFile);
    try {
      effective = (await readFile(file, 'utf8')).trim();
    } catch (e) {
      throw new CliError(`cannot read the token file ${file}: ${(e as Error).message}`, undefined, { cause: e });
    }
    entry.tokenFile = file;
  } else if (token !== undefined) {
    entry.token = token;
  }

  let caches;
  try {
    caches = await listCaches(new LoftClient({ endpoint, token: effective, retries: 0 }));
  } catch (e) {
    if (e instanceof LoftApiError && e.status === 401) {
      const why = typeof e.body?.message === 'string' ? e.body.message : e.code;
      throw new CliError(`${endpoint} refused the token (HTTP 401: ${why}); nothing was saved`, undefined, { cause: e });
    }
    if (e instanceof LoftApiError && e.status === 404) {
      throw new CliError(`${endpoint} does not look like a Loft server (GET /_api/v1/caches: HTTP 404); nothing was saved`, undefined, { cause: e });
    }
    throw e;
  }

  const file = configPath();
  const config = await loadClientConfig(file);
  config.servers[name] = entry;
  const makeDefault = opts.setDefault === true || config.defaultServer === undefined || !config.servers[config.defaultServer];
  if (makeDefault) config.defaultServer = name;
  await saveClientConfig(config, file);

  if (ctx.json) {
    const out = { server: name, endpoint, default: config.defaultServer === name, config: file, caches: caches.map((c) => c.name) };
    ctx.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    ctx.stdout.write(`${loginDone(name, endpoint, caches, config.defaultServer === name, file)}\n`);
  }
}
