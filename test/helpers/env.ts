import { execFileSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import pg from 'pg';

export const PG_ADMIN_URL = process.env.LOFT_TEST_PG_URL ?? 'postgresql://root@127.0.0.1:5432/test';
const IN_CI = process.env.CI === 'true';

let pgChecked: Promise<string | undefined> | undefined;
let nixChecked: string | undefined | null = null;

/** Why PostgreSQL cannot be used here, or undefined when it can. */
export function postgresUnavailable(): Promise<string | undefined> {
  pgChecked ??= (async () => {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
    try {
      await c.connect();
      await c.query('select 1');
      return undefined;
    } catch (e) {
      return `PostgreSQL at ${PG_ADMIN_URL} is not reachable (${(e as Error).message})`;
    } finally {
      await c.end().catch(() => {});
    }
  })();
  return pgChecked;
}

/** Why the real `nix` cannot be used here, or undefined when it can. */
export function nixUnavailable(): string | undefined {
  if (nixChecked === null) {
    try {
      execFileSync('nix', ['--version'], { stdio: 'pipe' });
      nixChecked = undefined;
    } catch {
      nixChecked = 'the nix command is not installed (apt-get install -y nix-bin)';
    }
  }
  return nixChecked;
}

/** Why the command `cmd` cannot be run here (not on PATH), or undefined when it can. */
export function commandUnavailable(cmd: string, debianPackage: string): string | undefined {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'pipe' });
    return undefined;
  } catch {
    return `the ${cmd} command is not installed (apt-get install -y ${debianPackage})`;
  }
}

/**
 * Skips a test whose prerequisite is missing, loudly; under CI=true a missing
 * prerequisite fails the test instead, so CI never passes by skipping.
 */
export function skipUnless(t: TestContext, reason: string | undefined): boolean {
  if (reason === undefined) return true;
  if (IN_CI) throw new Error(`required for CI: ${reason}`);
  console.warn(`\n*** SKIPPED: ${t.name}: ${reason} ***\n`);
  t.skip(reason);
  return false;
}
