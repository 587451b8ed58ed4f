// `loft pin add|list|remove`: named pins keep a path and its closure from garbage collection.
import type { CliContext } from '../context.ts';
import { listPins, removePin, setPin } from '../../client/admin.ts';
import { pinList, pinRemoved, pinSet } from '../output/messages.ts';
import { storePathHash } from './path.ts';

export interface PinAddOptions {
  keepRevisions?: number;
  keepDays?: number;
}

export async function pinAddCommand(ref: string, name: string, storePath: string, opts: PinAddOptions, ctx: CliContext): Promise<void> {
  const hash = storePathHash(storePath);
  const t = await ctx.resolveCache(ref);
  const pin = await setPin(t.client, t.cache, name, {
    store_path: hash,
    keep_revisions: opts.keepRevisions ?? null,
    keep_days: opts.keepDays ?? null,
  });
  if (ctx.json) ctx.stdout.write(`${JSON.stringify(pin, null, 2)}\n`);
  else ctx.stdout.write(`${pinSet(t.cache, pin)}\n`);
}

export async function pinListCommand(ref: string, ctx: CliContext): Promise<void> {
  const t = await ctx.resolveCache(ref);
  const pins = await listPins(t.client, t.cache);
  if (ctx.json) ctx.stdout.write(`${JSON.stringify({ cache: t.cache, pins }, null, 2)}\n`);
  else ctx.stdout.write(`${pinList(t.cache, pins)}\n`);
}

export async function pinRemoveCommand(ref: string, name: string, ctx: CliContext): Promise<void> {
  const t = await ctx.resolveCache(ref);
  await removePin(t.client, t.cache, name);
  if (ctx.json) ctx.stdout.write(`${JSON.stringify({ cache: t.cache, removed: name })}\n`);
  else ctx.stdout.write(`${pinRemoved(t.cache, name)}\n`);
}
