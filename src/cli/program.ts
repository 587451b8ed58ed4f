// The client commands of `loft` (login, use, cache, path, pin, gc, push, watch-store, completion), each
// loading its module lazily. Every action runs through `run`, which builds the CliContext and
// turns any error into one `error: …` line and an exit code (src/cli/errors.ts).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import type { CliContext, ResolvedCache, ResolvedServer } from './context.ts';
import { EXIT, exitCodeOf, formatError } from './errors.ts';

interface GlobalOptions {
  verbose?: boolean;
  json?: boolean;
}

/** The version in package.json, found by walking up from this module (works from src/ and dist/src/). */
export function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'loft' && pkg.version) return pkg.version;
    } catch {
      // no package.json here: keep walking up
    }
    const up = path.dirname(dir);
    if (up === dir) return '0.0.0-unknown';
    dir = up;
  }
}

export function makeContext(opts: GlobalOptions): CliContext {
  const resolveServer = async (name?: string): Promise<ResolvedServer> => {
    const { resolveServerTarget } = await import('./config.ts');
    const { LoftClient } = await import('../client/http.ts');
    const t = await resolveServerTarget(name);
    return { ...t, client: new LoftClient({ endpoint: t.endpoint, token: t.token, userAgent: `loft/${packageVersion()}` }) };
  };
  return {
    verbose: opts.verbose === true,
    json: opts.json === true,
    resolveServer,
    async resolveCache(ref: string): Promise<ResolvedCache> {
      const { parseCacheRef } = await import('./cache-ref.ts');
      const r = parseCacheRef(ref);
      return { ...(await resolveServer(r.server)), cache: r.cache };
    },
    stdout: process.stdout,
    stderr: process.stderr,
  };
}

/**
 * Runs one command: its result is the exit code; errors become one line (more
 * with --verbose); Ctrl-C exits 130 — unless the command stops cleanly on
 * signals itself (`ownsSignals`, watch-store).
 */
async function run(
  opts: GlobalOptions,
  body: (ctx: CliContext) => Promise<number | void>,
  { ownsSignals = false } = {},
): Promise<void> {
  const ctx = makeContext(opts);
  const onSigint = () => {
    ctx.stderr.write('\ninterrupted\n');
    process.exit(EXIT.INTERRUPTED);
  };
  if (!ownsSignals) process.once('SIGINT', onSigint);
  try {
    process.exitCode = (await body(ctx)) ?? EXIT.OK;
  } catch (e) {
    ctx.stderr.write(`${formatError(e, ctx.verbose)}\n`);
    process.exitCode = exitCodeOf(e);
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

function positiveInt(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('expected a positive integer');
  return Number(v);
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

function withGlobals(c: Command, json: boolean): Command {
  c.option('--verbose', 'on errors, show the stack and the HTTP details');
  if (json) c.option('--json', 'machine-readable JSON output');
  return c;
}

function cacheSettings(c: Command): Command {
  return c
    .option('--public', 'anyone may pull')
    .option('--private', 'only tokens granting pull may pull')
    .option('--priority <n>', 'substituter priority, lower is preferred (default 41)')
    .option('--upstream-key <name>', 'signing key name of an upstream cache whose paths push skips (repeatable)', collect)
    .option('--no-upstream-keys', 'no upstream cache keys: push filters out nothing')
    .option('--retention <period>', 'drop paths unused for this long: 30d, 12h, 2w, 1y, seconds, or forever')
    .option(
      '--upstream <spec>',
      "pull paths the cache lacks through from 'URL KEY [KEY…]' (an HTTP binary cache and its public keys) or 'cache:NAME' (a cache on this server); repeatable, in order, replaces the list",
      collect,
    )
    .option('--no-upstreams', 'turn pull-through off (no upstreams)')
    .option('--upstream-retention <period>', 'drop paths pulled from upstreams unused for this long: 30d, 12h, …, or forever')
    .option('--store-dir <dir>', 'store directory of the cache (default /nix/store)')
    .option('--signing-key-file <file>', "the cache's secret signing key, as `nix key generate-secret` writes it (configure: replaces every key)");
}

export function registerClientCommands(program: Command): void {
  // `--version` prints package.json's version however loft was started (not only under npm).
  const version = packageVersion();
  const events = program as unknown as NodeJS.EventEmitter;
  events.removeAllListeners('option:version');
  events.on('option:version', () => {
    process.stdout.write(`${version}\n`);
    process.exit(0);
  });

  withGlobals(program.command('login'), true)
    .description('save a server and its token in the client config (checked against the server first)')
    .argument('<name>', 'a name for the server, used as NAME:CACHE')
    .argument('<url>', 'the server URL, e.g. https://cache.example.com')
    .argument('[token]', 'the token (omit for anonymous access to public caches)')
    .option('--token-file <file>', 'read the token from this file whenever it is used, instead of storing it')
    .option('--set-default', 'make this the default server (the first server always is)')
    .action(async (name: string, url: string, token: string | undefined, opts) =>
      run(opts, async (ctx) => (await import('./commands/login.ts')).loginCommand(name, url, token, opts, ctx)),
    );

  withGlobals(program.command('use'), true)
    .description("configure the user's Nix to substitute from a cache (nix.conf, and netrc for private caches)")
    .argument('<cache>', '[SERVER:]CACHE')
    .option('--dry-run', 'print the changes, write nothing')
    .option('--nix-conf <file>', 'nix.conf to edit (default $XDG_CONFIG_HOME/nix/nix.conf)')
    .option('--netrc <file>', 'netrc file for private caches (default: netrc-file of nix.conf, else $XDG_CONFIG_HOME/nix/netrc)')
    .action(async (ref: string, opts) => run(opts, async (ctx) => (await import('./commands/use.ts')).useCommand(ref, opts, ctx)));

  const cache = program.command('cache').description('create, configure, inspect, list and destroy caches');
  withGlobals(cacheSettings(cache.command('create')), true)
    .description('create a cache (private unless --public); the server generates its signing key unless --signing-key-file')
    .argument('<cache>', '[SERVER:]CACHE')
    .action(async (ref: string, opts) => run(opts, async (ctx) => (await import('./commands/cache.ts')).cacheCreateCommand(ref, opts, ctx)));
  withGlobals(cacheSettings(cache.command('configure')), true)
    .description('change only the given settings of a cache')
    .argument('<cache>', '[SERVER:]CACHE')
    .option('--regenerate-key', 'replace the signing key (the new key gets a new name)')
    .option('--add-signing-key-file <file>', 'add a secret key that signs alongside the current ones (key rotation)')
    .option('--add-signing-key', 'let the server generate a key (the next name) that signs alongside the current ones')
    .option('--retire-signing-key <name>', 'stop signing with the key of this name (the end of a rotation)')
    .option('--reset-retention', 'use the server default retention again')
    .option('--reset-upstream-retention', 'use the server default retention of upstream paths again')
    .action(async (ref: string, opts) =>
      run(opts, async (ctx) => (await import('./commands/cache.ts')).cacheConfigureCommand(ref, opts, ctx)),
    );
  withGlobals(cache.command('info'), true)
    .description('show a cache: URL, signing keys, settings and storage statistics')
    .argument('<cache>', '[SERVER:]CACHE')
    .action(async (ref: string, opts) => run(opts, async (ctx) => (await import('./commands/cache.ts')).cacheInfoCommand(ref, ctx)));
  withGlobals(cache.command('list'), true)
    .description('list the caches the token can see')
    .argument('[server]', 'server name from the config (default: the default server)')
    .action(async (server: string | undefined, opts) =>
      run(opts, async (ctx) => (await import('./commands/cache.ts')).cacheListCommand(server, ctx)),
    );
  withGlobals(cache.command('destroy'), true)
    .description('destroy a cache and everything in it (asks for the cache name unless --yes)')
    .argument('<cache>', '[SERVER:]CACHE')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(async (ref: string, opts) =>
      run(opts, async (ctx) => (await import('./commands/cache.ts')).cacheDestroyCommand(ref, opts, ctx)),
    );

  const pathCmd = program.command('path').description('inspect and delete store paths in a cache');
  withGlobals(pathCmd.command('info'), true)
    .description('show a path: NarHash, sizes, references, signatures, chunks and dedup')
    .argument('<cache>', '[SERVER:]CACHE')
    .argument('<path>', 'store path, base name (HASH-name) or hash')
    .action(async (ref: string, p: string, opts) => run(opts, async (ctx) => (await import('./commands/path.ts')).pathInfoCommand(ref, p, ctx)));
  withGlobals(pathCmd.command('delete'), true)
    .description('delete paths from a cache (refused if other paths still reference them, unless --force)')
    .argument('<cache>', '[SERVER:]CACHE')
    .argument('<paths...>', 'store paths, base names or hashes')
    .option('--cascade', 'also delete every path that refers to them, at any depth (they are listed)')
    .option('--force', 'delete even if other paths in the cache reference them (breaks their closures)')
    .action(async (ref: string, paths: string[], opts) =>
      run(opts, async (ctx) => (await import('./commands/path.ts')).pathDeleteCommand(ref, paths, opts, ctx)),
    );

  const pin = program.command('pin').description('pin store paths: a pinned path and its closure are never garbage-collected');
  withGlobals(pin.command('add'), true)
    .description('pin a path under a name; pinning again under the same name moves the pin')
    .argument('<cache>', '[SERVER:]CACHE')
    .argument('<name>', 'the pin name, e.g. release or production')
    .argument('<path>', 'store path, base name, hash, or a symlink to a store path (./result)')
    .option('--keep-revisions <n>', 'when the pin moves, keep its last N targets', positiveInt)
    .option('--keep-days <d>', 'when the pin moves, keep each earlier target for D days after it was pinned', positiveInt)
    .action(async (ref: string, name: string, p: string, opts) =>
      run(opts, async (ctx) => (await import('./commands/pin.ts')).pinAddCommand(ref, name, p, opts, ctx)),
    );
  withGlobals(pin.command('list'), true)
    .description("list a cache's pins and what they keep")
    .argument('<cache>', '[SERVER:]CACHE')
    .action(async (ref: string, opts) => run(opts, async (ctx) => (await import('./commands/pin.ts')).pinListCommand(ref, ctx)));
  withGlobals(pin.command('remove'), true)
    .description('remove a pin (its paths are then subject to retention again)')
    .argument('<cache>', '[SERVER:]CACHE')
    .argument('<name>', 'the pin name')
    .action(async (ref: string, name: string, opts) =>
      run(opts, async (ctx) => (await import('./commands/pin.ts')).pinRemoveCommand(ref, name, ctx)),
    );

  withGlobals(program.command('gc'), true)
    .description('run garbage collection now: print what goes and the bytes freed')
    .argument('[cache]', '[SERVER:]CACHE; with --all, an optional SERVER')
    .option('--all', 'every cache (needs an admin token)')
    .option('--dry-run', 'print what would go, change nothing')
    .action(async (ref: string | undefined, opts) => run(opts, async (ctx) => (await import('./commands/gc.ts')).gcCommand(ref, opts, ctx)));

  withGlobals(program.command('push'), true)
    .description('push store paths (with their closure) to a cache')
    .argument('<cache>', '[SERVER:]CACHE')
    .argument('[paths...]', 'store paths or symlinks to them (e.g. ./result)')
    .option('--stdin', 'also read paths from stdin, one per line')
    .option('-j, --jobs <n>', 'paths read and chunked at once (their chunks share the upload requests)', positiveInt, 4)
    .option('--ignore-upstream-filter', 'push paths signed by upstream caches too')
    .option('--no-closure', 'push only the given paths, not their closure')
    .action(async (ref: string, paths: string[], opts) =>
      run(opts, async (ctx) =>
        (await import('./commands/push.ts')).pushCommand(
          ref,
          paths,
          { stdin: opts.stdin, jobs: opts.jobs, ignoreUpstreamFilter: opts.ignoreUpstreamFilter, closure: opts.closure },
          ctx,
        ),
      ),
    );

  withGlobals(program.command('watch-store'), false)
    .description('push every new store path to a cache as it appears')
    .argument('<cache>', '[SERVER:]CACHE')
    .option('-j, --jobs <n>', 'paths read and chunked at once (their chunks share the upload requests)', positiveInt, 4)
    .option('--ignore-upstream-filter', 'push paths signed by upstream caches too')
    .addOption(new Option('--store-dir <dir>', 'store directory to watch').hideHelp())
    .action(async (ref: string, opts) =>
      run(
        opts,
        async (ctx) =>
          (await import('./commands/watch-store.ts')).watchStoreCommand(
            ref,
            { jobs: opts.jobs, ignoreUpstreamFilter: opts.ignoreUpstreamFilter, storeDir: opts.storeDir },
            ctx,
          ),
        { ownsSignals: true },
      ),
    );

  program
    .command('completion')
    .description('print a shell completion script')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh', 'fish']))
    .action(async (shell: string, _opts, cmd: Command) =>
      run({}, async (ctx) => (await import('./commands/completion.ts')).completionCommand(shell, cmd, ctx.stdout)),
    );
}
