// `loft gc`, `loft pin add|list|remove` and `loft path delete --cascade` as a child process against
// a real server (LOFT_SERVER/LOFT_TOKEN, no config file), on SQLite + disk and PostgreSQL + S3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DB_KINDS } from '../../helpers/databases.ts';
import { postgresUnavailable, skipUnless } from '../../helpers/env.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { pushPath } from './support.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { type CliRun, runCli } from '../../helpers/cli.ts';
import type { GcReport, Pin } from '../../../src/api/v1.ts';

const ok = (r: CliRun) => assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);

const push = (server: TestServer, cache: string, name: string, references: string[] = []) => pushPath(server, cache, name, references, 100_000);

for (const db of DB_KINDS) {
  test(`loft gc, loft pin and loft path delete --cascade (${db})`, { timeout: 240_000 }, async (t) => {
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const server = await startTestServer({ db, toml: { gc: { interval_seconds: 0, staging_grace_seconds: 0 } } });
    const tmp = await makeTempDir('loft-gc-cli-');
    t.after(async () => {
      await server.close();
      await tmp.cleanup();
    });
    const env = { HOME: tmp.path, XDG_CONFIG_HOME: `${tmp.path}/xdg`, LOFT_SERVER: server.url, LOFT_TOKEN: server.adminToken };
    const loft = (...args: string[]) => runCli(args, env);
    await server.createCache('cli', { retention_period: 86400 });
    const lib = await push(server, 'cli', 'lib');
    const app = await push(server, 'cli', 'app', [lib.baseName]);
    const stray = await push(server, 'cli', 'stray');
    await server.services.kysely.updateTable('objects').set({ last_accessed_at: Date.now() - 10 * 86400_000 }).execute();

    const added = await loft('pin', 'add', 'cli', 'release', app.path, '--keep-revisions', '3');
    ok(added);
    assert.match(added.stdout, new RegExp(`pinned ${app.path} as 'release' in 'cli'`));
    const listed = await loft('pin', 'list', 'cli', '--json');
    ok(listed);
    const pins = (JSON.parse(listed.stdout) as { pins: Pin[] }).pins;
    assert.deepEqual(pins.map((p) => [p.name, p.store_path, p.keep_revisions]), [['release', app.path, 3]]);
    const table = await loft('pin', 'list', 'cli');
    assert.match(table.stdout, /release\s+\/nix\/store\/\S+-app\s+last 3\s+1/);

    const dry = await loft('gc', 'cli', '--dry-run');
    ok(dry);
    assert.match(dry.stdout, new RegExp(`cli: 1 path .*\\n  ${stray.path}\\n`));
    assert.match(dry.stdout, /dry run: 1 path would go.*nothing was changed/);
    const real = await loft('gc', 'cli', '--json');
    ok(real);
    const report = JSON.parse(real.stdout) as GcReport;
    assert.deepEqual(report.caches[0].store_paths, [stray.path], 'the pin keeps app and, through it, lib');
    assert.ok(report.bytes_freed > 0);
    const all = await loft('gc', '--all');
    ok(all);
    assert.match(all.stdout, /✓ 0 paths, 0 NARs and 0 chunks collected; 0 B freed/);
    const noCache = await loft('gc');
    assert.equal(noCache.code, 1, noCache.stderr);
    assert.match(noCache.stderr, /name the cache.*--all/);

    const refused = await loft('path', 'delete', 'cli', lib.path);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /still referenced by .*-app.*cascade/);
    const pinned = await loft('path', 'delete', 'cli', lib.path, '--cascade');
    assert.equal(pinned.code, 1);
    assert.match(pinned.stderr, /remove the pin release first/);
    ok(await loft('pin', 'remove', 'cli', 'release'));
    const cascaded = await loft('path', 'delete', 'cli', lib.path, '--cascade');
    ok(cascaded);
    assert.match(cascaded.stdout, new RegExp(`deleted 2 paths from 'cli', with the 1 that referred to them:\\n  ${app.path}`));
  });
}
