// `loft gc [SERVER:]CACHE [--dry-run]` and `loft gc --all [SERVER]`.
import type { CliContext } from '../context.ts';
import { runGc } from '../../client/admin.ts';
import { UsageError } from '../errors.ts';
import { gcDone } from '../output/messages.ts';

export interface GcOptions {
  all?: boolean;
  dryRun?: boolean;
}

/** With --all the argument is an optional server name; otherwise it is the cache. */
export async function gcCommand(ref: string | undefined, opts: GcOptions, ctx: CliContext): Promise<void> {
  let target;
  if (opts.all) {
    target = { ...(await ctx.resolveServer(ref)), cache: undefined };
  } else {
    if (ref === undefined) throw new UsageError('name the cache to collect, or give --all for every cache (admin token)');
    target = await ctx.resolveCache(ref);
  }
  const report = await runGc(target.client, { cache: target.cache, dry_run: opts.dryRun === true });
  if (ctx.json) ctx.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else ctx.stdout.write(`${gcDone(report)}\n`);
}
