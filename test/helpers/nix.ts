import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const exec = promisify(execFile);
const CORPUS = fileURLToPath(new URL('../fixtures/corpus.nix', import.meta.url));

/**
 * Nix settings for tests: no internet substituters, and a private client cache per test (Nix caches
 * narinfo lookups). Builds run as the calling user: a machine without the `nixbld` group can build.
 */
export function nixEnv(dir: string, extra: string[] = []): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NIX_CONFIG: ['experimental-features = nix-command', 'substituters =', 'sandbox = false', 'build-users-group =', ...extra].join('\n'),
    XDG_CACHE_HOME: path.join(dir, 'xdg-cache'),
  };
}

export async function nix(args: string[], env: NodeJS.ProcessEnv, cmd = 'nix'): Promise<string> {
  try {
    const { stdout } = await exec(cmd, args, { env, maxBuffer: 64 * 1024 * 1024 });
    return stdout.trim();
  } catch (e) {
    const err = e as Error & { stderr?: string; code?: number };
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${err.code}):\n${err.stderr ?? err.message}`);
  }
}

const built = new Map<string, Promise<Record<string, string>>>();

/** Builds attributes of test/fixtures/corpus.nix in /nix/store, once per process and arguments. */
export function buildCorpus(attrs: string[], args: { salt?: string; bigMiB?: number } = {}): Promise<Record<string, string>> {
  const key = JSON.stringify([attrs, args]);
  let p = built.get(key);
  if (!p) {
    p = (async () => {
      const cli = ['--no-out-link', CORPUS];
      for (const a of attrs) cli.push('-A', a);
      if (args.salt) cli.push('--argstr', 'salt', args.salt);
      if (args.bigMiB) cli.push('--arg', 'bigMiB', String(args.bigMiB));
      const out = (await nix(cli, nixEnv('/tmp'), 'nix-build')).split('\n');
      return Object.fromEntries(attrs.map((a, i) => [a, out[i]]));
    })();
    built.set(key, p);
  }
  return p;
}

export async function closureOf(paths: string[]): Promise<string[]> {
  return (await nix(['-qR', ...paths], nixEnv('/tmp'), 'nix-store')).split('\n').filter(Boolean);
}

/** A netrc giving `token` as the password for the host of `url` (Nix sends it as Basic auth). */
export async function writeNetrc(dir: string, url: string, token: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'netrc');
  await writeFile(file, `machine ${new URL(url).hostname}\nlogin loft\npassword ${token}\n`, { mode: 0o600 });
  return file;
}
