// `loft use [SERVER:]CACHE`: points the user's Nix at a cache. Adds its URL to the substituters
// and its key to trusted-public-keys in nix.conf (see src/cli/nix-conf.ts for which line), and,
// for a private cache, the token as `machine HOST password TOKEN` in a netrc file that nix.conf
// names with `netrc-file`. Idempotent; `--dry-run` only prints what would change.
import path from 'node:path';
import type { CliContext } from '../context.ts';
import { xdgConfigHome } from '../config.ts';
import { CliError } from '../errors.ts';
import { addToList, getScalar, readIfExists, setScalar, upsertNetrc, writeConfigFile, type TextEdit } from '../nix-conf.ts';
import { fileChanges, TRUST_WARNING, useDone, type FileChangeReport } from '../output/messages.ts';

export interface UseOptions {
  dryRun?: boolean;
  nixConf?: string;
  netrc?: string;
}

interface PlannedFile extends FileChangeReport {
  text: string;
  mode?: number;
}

function merge(file: string, created: boolean, edits: TextEdit[], text: string, mode?: number): PlannedFile {
  return { file, created, text, mode, removed: edits.flatMap((e) => e.removed), added: edits.flatMap((e) => e.added) };
}

export async function useCommand(ref: string, opts: UseOptions, ctx: CliContext): Promise<void> {
  const target = await ctx.resolveCache(ref);
  const config = await target.client.cacheConfig(target.cache);
  const nixDir = path.join(xdgConfigHome(), 'nix');
  const nixConf = path.resolve(opts.nixConf ?? path.join(nixDir, 'nix.conf'));

  const original = await readIfExists(nixConf);
  const subst = addToList(original ?? '', 'substituters', config.url);
  const keys = addToList(subst.text, 'trusted-public-keys', config.public_key);
  const nixEdits = [subst, keys];
  const planned: PlannedFile[] = [];

  let netrcFile: string | undefined;
  if (!config.is_public) {
    if (!target.token) {
      throw new CliError(`cache '${config.name}' is private and no token is configured for '${target.name}'`, 'run `loft login` with a token, or set LOFT_TOKEN');
    }
    // An existing netrc-file setting is the user's choice: add to that file unless --netrc says otherwise.
    netrcFile = path.resolve(opts.netrc ?? getScalar(original ?? '', 'netrc-file') ?? path.join(nixDir, 'netrc'));
    const netrcText = await readIfExists(netrcFile);
    const netrc = upsertNetrc(netrcText ?? '', new URL(config.url).hostname, target.token);
    planned.push(merge(netrcFile, netrcText === undefined, [netrc], netrc.text, 0o600));
    nixEdits.push(setScalar(keys.text, 'netrc-file', netrcFile));
  }
  const finalConf = nixEdits[nixEdits.length - 1].text;
  planned.unshift(merge(nixConf, original === undefined, nixEdits, finalConf));

  const toWrite = planned.filter((p) => p.added.length || p.removed.length);
  if (!opts.dryRun) {
    // The netrc first: nix.conf must never name a netrc file that does not hold the token yet.
    for (const p of [...toWrite].reverse()) await writeConfigFile(p.file, p.text, p.mode);
  }

  if (ctx.json) {
    const out = {
      cache: config.name,
      server: target.name,
      url: config.url,
      public_key: config.public_key,
      is_public: config.is_public,
      nix_conf: nixConf,
      netrc_file: netrcFile ?? null,
      dry_run: opts.dryRun === true,
      changes: planned.map(({ file, created, removed, added }) => ({ file, created, removed, added })),
    };
    ctx.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    ctx.stdout.write(`${fileChanges(planned, opts.dryRun === true)}\n${useDone(config.name, config.url, opts.dryRun === true)}\n`);
  }
  ctx.stderr.write(`${TRUST_WARNING}\n`);
}
