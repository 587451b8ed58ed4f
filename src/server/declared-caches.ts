import { readFile } from 'node:fs/promises';
import { parseSecretKeys } from '../core/cache-keys.ts';
import { LoftError } from '../core/errors.ts';
import type { SigningKey } from '../nix/signing.ts';
import type { KeySource } from './config.ts';
import type { Services } from './services.ts';

async function readKeys(cache: string, src: KeySource): Promise<SigningKey[]> {
  const where = 'file' in src ? `signing key file ${src.file} of cache '${cache}'` : `${src.env} (signing key of cache '${cache}')`;
  let text: string;
  if ('file' in src) {
    try {
      text = await readFile(src.file, 'utf8');
    } catch (e) {
      throw new Error(`cannot read the ${where}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  } else {
    text = src.text;
  }
  return parseSecretKeys(text, where);
}

/**
 * Declarative setups: each cache of the config exists, and its configured keys are exactly its
 * active ones (a key left out of the config is retired). Runs on every start; a no-op when the
 * database already agrees. Returns the names of the caches it applied.
 */
export async function applyDeclaredCaches(s: Services): Promise<string[]> {
  const applied: string[] = [];
  for (const d of s.config.declaredCaches) {
    try {
      const keys = d.signingKeys && (await readKeys(d.name, d.signingKeys));
      await s.caches.declare(d.name, { isPublic: d.isPublic }, keys);
    } catch (e) {
      // Start-up errors are plain: a config problem, not an HTTP answer.
      if (e instanceof LoftError) throw new Error(`config: cache '${d.name}': ${e.message}`);
      throw e;
    }
    applied.push(d.name);
  }
  return applied;
}
