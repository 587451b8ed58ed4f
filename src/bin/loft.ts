#!/usr/bin/env node
import { Command, Option } from 'commander';

// Chunk files are written and fsynced many at a time; libuv's default of 4
// threads would serialise those syncs. Must be set before the pool starts.
process.env.UV_THREADPOOL_SIZE ??= '32';

/** `loft`: the server (`serve`, offline `token`) and the client commands, loaded lazily. */
const program = new Command('loft')
  .description('Loft: a Nix binary cache server and client')
  .version(process.env.npm_package_version ?? '0.1.0');

program
  .command('serve')
  .description('run the server')
  .option('-c, --config <file>', 'TOML config file (default: $LOFT_CONFIG, else built-in defaults)')
  .option('-l, --listen <host:port>', 'listen address (overrides the config and LOFT_LISTEN)')
  .addOption(
    new Option('--mode <mode>', 'what to run').choices(['monolithic', 'api', 'worker', 'migrate', 'check-config']).default('monolithic'),
  )
  .action(async (opts) => {
    const { serve } = await import('../server/main.ts');
    await serve(opts);
  });

// Options are parsed by the token module itself, so loading it stays lazy.
program
  .command('token')
  .description('create, revoke and list access tokens (offline from the server config, or through the API)')
  .argument('[args...]', 'create | revoke JTI | list, and their options (loft token --help)')
  .helpOption(false)
  .allowUnknownOption()
  .action(async (args: string[]) => {
    const { runTokenCommand } = await import('../cli/commands/token.ts');
    await runTokenCommand(args);
  });

(await import('../cli/program.ts')).registerClientCommands(program);

program.parseAsync(process.argv).catch((e: Error) => {
  console.error(`error: ${e.message}`);
  if (process.argv.includes('--verbose')) console.error(e.stack);
  process.exit(1);
});
