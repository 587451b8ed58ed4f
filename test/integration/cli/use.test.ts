// `loft use` as a child process against a real server, editing nix.conf and netrc in a private
// XDG_CONFIG_HOME: --dry-run writes nothing, a second run changes nothing, unrelated lines stay,
// and a private cache gets a 0600 netrc entry named by netrc-file. Also the text edits themselves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startTestServer } from '../../helpers/server.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { addToList, effectiveList, getScalar, netrcPassword, setScalar, upsertNetrc } from '../../../src/cli/nix-conf.ts';
import { type CliRun as Run, runCli as loft } from '../../helpers/cli.ts';




const ok = (r: Run) => assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);

test('nix.conf and netrc edits', () => {
  // A new setting goes in as extra-NAME, so the system's own list stays in effect.
  const a = addToList('', 'substituters', 'http://x/c');
  assert.equal(a.text, 'extra-substituters = http://x/c\n');
  assert.deepEqual(addToList(a.text, 'substituters', 'http://x/c').added, []);
  // The file's own form is kept: the line in effect gets the value, before its comment.
  const conf = 'keep-outputs = true\nsubstituters = https://a # mine\n# substituters = old\ntrusted-substituters = https://t\n';
  const b = addToList(conf, 'substituters', 'http://x/c');
  assert.equal(b.text, 'keep-outputs = true\nsubstituters = https://a http://x/c # mine\n# substituters = old\ntrusted-substituters = https://t\n');
  assert.deepEqual(b.removed, ['substituters = https://a # mine']);
  assert.deepEqual(effectiveList(b.text, 'substituters'), ['https://a', 'http://x/c']);
  // A value only in an overridden line is not in effect; an extra- line after the plain one is.
  assert.equal(addToList('substituters = http://x/c\nsubstituters = https://a\n', 'substituters', 'http://x/c').text, 'substituters = http://x/c\nsubstituters = https://a http://x/c\n');
  assert.equal(addToList('substituters = https://a\nextra-substituters = https://b\n', 'substituters', 'v').text, 'substituters = https://a\nextra-substituters = https://b v\n');
  assert.equal(addToList('substituters =\n', 'substituters', 'v').text, 'substituters = v\n');
  assert.equal(addToList('x = 1', 'substituters', 'v').text, 'x = 1\nextra-substituters = v\n');
  // Scalars.
  assert.equal(setScalar('netrc-file = /a # c\n', 'netrc-file', '/b').text, 'netrc-file = /b # c\n');
  assert.equal(setScalar('netrc-file = /b\n', 'netrc-file', '/b').added.length, 0);
  assert.equal(getScalar('netrc-file = /a\nnetrc-file = /b\n', 'netrc-file'), '/b');
  // netrc: other machines stay, every entry of ours is replaced by one, the second run is a no-op.
  const netrc = 'machine other.example login me password p1\nmachine 127.0.0.1\n  login old\n  password stale\nmachine 127.0.0.1 password dup\ndefault login anon password x\n';
  const n = upsertNetrc(netrc, '127.0.0.1', 'tok');
  assert.equal(n.text, 'machine other.example login me password p1\nmachine 127.0.0.1 password tok\ndefault login anon password x\n');
  assert.equal(netrcPassword(n.text, '127.0.0.1'), 'tok');
  assert.equal(netrcPassword(n.text, 'other.example'), 'p1');
  assert.deepEqual(upsertNetrc(n.text, '127.0.0.1', 'tok').added, []);
  assert.ok(n.added.every((l) => !l.includes('tok')), 'the report masks the token');
  assert.equal(upsertNetrc('machine a password b', 'h', 't').text, 'machine a password b\nmachine h password t\n');
});

test('loft use', { timeout: 120_000 }, async (t) => {
  const server = await startTestServer({ db: 'sqlite' });
  const tmp = await makeTempDir('loft-cli-use-');
  t.after(async () => {
    await server.close();
    await tmp.cleanup();
  });
  const xdg = path.join(tmp.path, 'xdg');
  const env = { HOME: path.join(tmp.path, 'home'), XDG_CONFIG_HOME: xdg };
  const nixConf = path.join(xdg, 'nix', 'nix.conf');
  const netrc = path.join(xdg, 'nix', 'netrc');
  const pubKey = await server.createCache('pub', { is_public: true });
  const privKey = await server.createCache('priv', { is_public: false });
  ok(await loft(['login', 'local', server.url, server.adminToken], env));

  await t.test('--dry-run prints the changes and writes nothing', async () => {
    const r = await loft(['use', 'priv', '--dry-run'], env);
    ok(r);
    assert.match(r.stdout, new RegExp(`would change ${nixConf} \\(new file\\):`));
    assert.ok(r.stdout.includes(`  + extra-substituters = ${server.url}/priv`));
    assert.ok(r.stdout.includes(`  + extra-trusted-public-keys = ${privKey}`));
    assert.ok(r.stdout.includes(`  + netrc-file = ${netrc}`));
    assert.ok(r.stdout.includes('  + machine 127.0.0.1 password ********'));
    assert.ok(!r.stdout.includes(server.adminToken), 'the token is never printed');
    assert.match(r.stderr, /trusted-substituters/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.equal(existsSync(path.join(xdg, 'nix')), false);
  });

  await t.test('use adds to the lines the file uses, keeps the rest, and is idempotent', async () => {
    await mkdir(path.dirname(nixConf), { recursive: true });
    const original = [
      '# my own settings',
      'keep-outputs = true',
      'substituters = https://cache.nixos.org # the default',
      'trusted-public-keys = cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=',
      'max-jobs = 4',
      '',
    ].join('\n');
    await writeFile(nixConf, original);
    const first = await loft(['use', 'local:pub'], env);
    ok(first);
    assert.match(first.stdout, /configured Nix to use 'pub'/);
    const after = await readFile(nixConf, 'utf8');
    assert.equal(
      after,
      [
        '# my own settings',
        'keep-outputs = true',
        `substituters = https://cache.nixos.org ${server.url}/pub # the default`,
        `trusted-public-keys = cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY= ${pubKey}`,
        'max-jobs = 4',
        '',
      ].join('\n'),
    );
    // A public cache needs no netrc.
    assert.equal(existsSync(netrc), false);
    const second = await loft(['use', 'pub'], env);
    ok(second);
    assert.match(second.stdout, /nothing to change/);
    assert.equal(await readFile(nixConf, 'utf8'), after);
  });

  await t.test('a private cache gets a 0600 netrc entry and netrc-file; twice changes nothing', async () => {
    await writeFile(netrc, 'machine example.org login me password keep-me\nmachine 127.0.0.1 password old-token\n', { mode: 0o644 });
    const before = await readFile(nixConf, 'utf8');
    const r = await loft(['use', 'priv'], env);
    ok(r);
    const conf = await readFile(nixConf, 'utf8');
    assert.ok(conf.startsWith(before.trimEnd().split('\n').slice(0, 2).join('\n')));
    assert.deepEqual(effectiveList(conf, 'substituters'), ['https://cache.nixos.org', `${server.url}/pub`, `${server.url}/priv`]);
    assert.deepEqual(effectiveList(conf, 'trusted-public-keys').slice(1), [pubKey, privKey]);
    assert.equal(getScalar(conf, 'netrc-file'), netrc);
    assert.match(conf, /max-jobs = 4/);
    const text = await readFile(netrc, 'utf8');
    assert.equal((await stat(netrc)).mode & 0o777, 0o600);
    assert.equal(netrcPassword(text, '127.0.0.1'), server.adminToken);
    assert.equal(netrcPassword(text, 'example.org'), 'keep-me');
    assert.equal(text.match(/machine 127\.0\.0\.1/g)?.length, 1);

    const again = await loft(['use', 'priv', '--json'], env);
    ok(again);
    const report = JSON.parse(again.stdout) as { changes: Array<{ added: string[]; removed: string[] }>; is_public: boolean; netrc_file: string };
    assert.equal(report.is_public, false);
    assert.equal(report.netrc_file, netrc);
    assert.ok(report.changes.every((c) => c.added.length === 0 && c.removed.length === 0));
    assert.equal(await readFile(nixConf, 'utf8'), conf);
    assert.equal(await readFile(netrc, 'utf8'), text);
  });

  await t.test('--nix-conf and --netrc choose other files; errors are one line', async () => {
    const otherConf = path.join(tmp.path, 'other', 'nix.conf');
    const otherNetrc = path.join(tmp.path, 'other', 'netrc');
    ok(await loft(['use', 'priv', '--nix-conf', otherConf, '--netrc', otherNetrc], env));
    assert.equal(getScalar(await readFile(otherConf, 'utf8'), 'netrc-file'), otherNetrc);
    assert.equal(netrcPassword(await readFile(otherNetrc, 'utf8'), '127.0.0.1'), server.adminToken);
    const r = await loft(['use', 'missing'], env);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), "error: no such cache 'missing' (HTTP 404)");
  });
});
