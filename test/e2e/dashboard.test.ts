// The web dashboard in a real Chromium against a server filled by the real `nix copy` and `loft push`,
// pulled from by the real Nix: sign-in, overview → cache → path → reference, search, charts with
// data, admin token revoke, escaping of hostile names, private caches hidden from anonymous viewers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { DB_KINDS } from '../helpers/databases.ts';
import { nixUnavailable, postgresUnavailable, skipUnless } from '../helpers/env.ts';
import { nix, nixEnv, writeNetrc } from '../helpers/nix.ts';
import { startTestServer } from '../helpers/server.ts';
import { issueViaApi, waitForRevocation } from '../helpers/tokens.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { runCli } from '../helpers/cli.ts';
import { chromiumUnavailable, collectErrors, launchChromium } from '../helpers/browser.ts';

/** File names a NAR may hold (anything but '/' and NUL): each would run script if parsed as HTML. */
const HOSTILE_FILES = ['<img src=x onerror=window.__xss=1>', '"><svg onload=window.__xss=2>', "'><script>window.__xss=3<"];
/** A symlink target is any string. */
const HOSTILE_LINK = '<img src=y onerror=window.__xss=4>';
/** The name part of a store path allows these characters besides letters and digits. */
const ODD_NAME = 'dash?=+-._name';

/** A fresh chain dep ← mid ← top, and a path whose files and name are hostile (it refers to dep). */
async function buildPaths(salt: string): Promise<{ dep: string; mid: string; top: string; odd: string }> {
  const mk = (name: string, script: string) =>
    `derivation { name = ${JSON.stringify(name)}; salt = "${salt}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" ${JSON.stringify(script)} ]; }`;
  const files = HOSTILE_FILES.map((f) => `echo x > "$out/${f.replace(/"/g, '\\"')}"`).join('; ');
  const expr = `let
    dep = ${mk('dash-dep', 'mkdir $out; echo dep > $out/file')};
    mid = ${mk('dash-mid', 'mkdir $out; echo ${dep} > $out/dep')};
    top = ${mk('dash-top', 'mkdir $out; echo ${mid} > $out/dep')};
    odd = ${mk(ODD_NAME, `mkdir -p $out/sub; ${files}; ln -s '${HOSTILE_LINK}' $out/link; echo \${dep} > $out/sub/dep`)};
  in [ dep mid top odd ]`;
  const [dep, mid, top, odd] = (await nix(['--no-out-link', '-E', expr], nixEnv('/tmp'), 'nix-build')).split('\n');
  return { dep, mid, top, odd };
}

const hashOf = (storePath: string) => path.basename(storePath).slice(0, 32);

async function shot(page: Page, dir: string, name: string): Promise<void> {
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
}

for (const db of DB_KINDS) {
  test(`dashboard in Chromium over real pushes and pulls (${db})`, { timeout: 600_000 }, async (t) => {
    if (!skipUnless(t, nixUnavailable())) return;
    if (!skipUnless(t, chromiumUnavailable())) return;
    if (db === 'postgres' && !skipUnless(t, await postgresUnavailable())) return;
    const paths = await buildPaths(randomBytes(6).toString('hex'));
    // Flushed by hand below, as every replica's timer would.
    const server = await startTestServer({ db, toml: { metrics: { history_flush_seconds: 0 }, gc: { default_retention_seconds: 30 * 86400 } } });
    const tmp = await makeTempDir('loft-e2e-dashboard-');
    const shots = path.join(tmp.path, 'screenshots');
    await mkdir(shots, { recursive: true });
    const browser = await launchChromium(tmp.path);
    let passed = false;
    t.after(async () => {
      await browser.close();
      await server.close();
      // Kept when asked for, and always after a failure, to see what the browser showed.
      if (passed && !process.env.LOFT_KEEP_SCREENSHOTS) await tmp.cleanup();
      else console.log(`screenshots kept in ${shots}`);
    });

    const key = await server.createCache('pub', { is_public: true });
    await server.createCache('hidden-team', { is_public: false });
    const ci = await issueViaApi(server, { sub: 'ci-runner', caches: { pub: ['pull', 'push'], 'hidden-team': ['pull', 'push'] } });
    const victim = await issueViaApi(server, { sub: 'leaked-laptop', caches: { pub: ['pull'] } });

    // Pushes: the chain by `nix copy`, the hostile path by `loft push`, one path to the private cache.
    const netrc = await writeNetrc(path.join(tmp.path, 'ci'), server.url, ci.token);
    const copy = (cache: string, p: string) =>
      nix(['copy', '--to', `${server.url}/${cache}?compression=zstd`, '--option', 'netrc-file', netrc, p], nixEnv(path.join(tmp.path, `copy-${cache}`)));
    await copy('pub', paths.top);
    await copy('hidden-team', paths.dep);
    const pushed = await runCli(['push', 'pub', paths.odd, '--json'], {
      XDG_CONFIG_HOME: path.join(tmp.path, 'no-config'),
      LOFT_SERVER: server.url,
      LOFT_TOKEN: ci.token,
    });
    assert.equal(pushed.code, 0, pushed.stderr);
    // A failed push (a narinfo that does not parse), which the history counts as such.
    const refused = await server.fetch(`/pub/${hashOf(paths.top)}.narinfo`, { method: 'PUT', token: ci.token, body: 'not a narinfo' });
    assert.equal(refused.status, 400);

    // Pulls: the real Nix substitutes the chain (narinfo hits, NAR downloads), and asks for a missing path.
    await nix(
      ['--store', path.join(tmp.path, 'store'), '-r', paths.top, '--option', 'substituters', `${server.url}/pub`, '--option', 'trusted-public-keys', key],
      nixEnv(path.join(tmp.path, 'pull')),
      'nix-store',
    );
    assert.equal((await server.fetch(`/pub/${'0'.repeat(32)}.narinfo`)).status, 404);
    assert.equal((await server.fetch('/_api/v1/gc', { method: 'POST', token: server.adminToken })).status, 200);
    await server.services.usage.flush();

    const page = await browser.newPage();
    const errors = collectErrors(page);

    // Anonymous: the public cache only; the private one is neither listed nor readable.
    await page.goto(`${server.url}/dashboard`);
    await page.locator('tr[data-cache="pub"]').waitFor();
    assert.equal(await page.locator('tr[data-cache="hidden-team"]').count(), 0);
    assert.doesNotMatch(await page.content(), /hidden-team/);
    await shot(page, shots, 'overview-anonymous');

    // Sign in: the token goes to sessionStorage, never into the URL.
    await page.fill('#token', server.adminToken);
    await page.click('#signin-button');
    await page.locator('#who', { hasText: 'signed in as root (admin)' }).waitFor();
    assert.ok(!page.url().includes(server.adminToken));
    assert.equal(await page.evaluate(() => sessionStorage.getItem('loft-token')), server.adminToken);
    await page.locator('tr[data-cache="hidden-team"]').waitFor();
    const pubRow = await page.locator('tr[data-cache="pub"]').innerText();
    assert.match(pubRow, /public\s+4\s/, pubRow); // dep, mid, top and odd
    assert.match(pubRow, /\d+(\.\d)? %/, 'hit rate and dedup saving shown');
    // GC ran once; the revocable tokens are listed.
    assert.match(await page.locator('main').innerText(), /Garbage collection/);
    const pass = await page.locator('tr[data-gc-pass]').first().innerText();
    assert.match(pass, /api\s+\*\s+\d+\s+\d+\s+\d+\s+\S+ (B|kB|MB)\s+\d+\.\d s/, `the recorded pass: ${pass}`);
    await page.locator(`#tokens tr[data-jti="${victim.jti}"] button`).waitFor();
    assert.match(await page.locator(`#tokens tr[data-jti="${ci.jti}"]`).innerText(), /ci-runner\s+pub: pull, push; hidden-team: pull, push/);
    await shot(page, shots, 'overview-admin');

    // Overview → cache: charts drawn from the recorded history, recent pushes by sub.
    await page.click('tr[data-cache="pub"] a');
    await page.waitForURL(/\/dashboard\/pub$/);
    for (const chart of ['Hit rate', 'Requests', 'Bytes served and received', 'Storage', 'Dedup saving']) {
      const fig = page.locator(`figure[data-chart="${chart}"]`);
      await fig.waitFor();
      assert.ok(Number(await fig.getAttribute('data-points')) > 0, `${chart} has points`);
      assert.ok((await fig.locator('polyline').count()) > 0, `${chart} has lines`);
    }
    assert.equal(await page.locator('figure[data-chart="Requests"] circle[data-series="failed pushes"]').count(), 1);
    const pushesText = await page.locator('main table').last().innerText();
    assert.match(pushesText, /ci-runner\s+nix-copy\s+3\s/, pushesText);
    assert.match(pushesText, /ci-runner\s+(upload-path|chunks)\s+1\s/, pushesText);
    await shot(page, shots, 'cache');

    // Search by name → path page → reference → its page, which lists the referrer.
    await page.fill('#q', 'dash-mid');
    await page.click('form.search button');
    const hit = page.locator('#results a', { hasText: 'dash-mid' });
    await hit.waitFor();
    await hit.click();
    await page.waitForURL(new RegExp(`/dashboard/pub/${hashOf(paths.mid)}$`));
    await page.locator('#narinfo').waitFor();
    const fields = await page.locator('#narinfo').innerText();
    assert.match(fields, new RegExp(`StorePath\\s+${paths.mid.replace(/[.?+]/g, '\\$&')}`));
    assert.match(fields, /NarHash\s+sha256:[0-9a-z]{52}/);
    assert.match(fields, /closure\s+2 paths/);
    assert.match(fields, /GC\s+kept while a path that refers to it is kept/);
    assert.match(await page.locator('#referrers').innerText(), /dash-top/);
    await page.click('#references a');
    await page.waitForURL(new RegExp(`/dashboard/pub/${hashOf(paths.dep)}$`));
    await page.locator('#referrers').waitFor();
    assert.match(await page.locator('#referrers').innerText(), /dash-mid/);
    assert.match(await page.locator('#files').innerText(), /file/);

    // Search by hash → the hostile path: its name and file names shown as text, no script ran.
    await page.goto(`${server.url}/dashboard/pub`);
    await page.fill('#q', hashOf(paths.odd).slice(0, 12));
    await page.click('form.search button');
    await page.locator('#results a', { hasText: ODD_NAME }).click();
    await page.locator('#files').waitFor();
    assert.equal(await page.locator('h1').innerText(), paths.odd);
    const files = await page.locator('#files').innerText();
    for (const f of HOSTILE_FILES) assert.ok(files.includes(f), `file name ${f} shown literally:\n${files}`);
    assert.ok(files.includes(`link → ${HOSTILE_LINK}`), files);
    assert.match(await page.locator('#narinfo').innerText(), new RegExp(`Deriver\\s+[0-9a-z]{32}-${ODD_NAME.replace(/[.?+]/g, '\\$&')}\\.drv`));
    assert.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined);
    assert.equal(await page.locator('main img, main script, main svg[onload]').count(), 0);
    // The download link fetches the NAR with the token.
    const download = page.waitForEvent('download');
    await page.click('text=NAR (zstd)');
    assert.match((await download).suggestedFilename(), /^[0-9a-z]{52}\.nar\.zst$/);
    await shot(page, shots, 'path');

    // Revoke a token as admin: the row says so and the token stops working.
    await page.goto(`${server.url}/dashboard`);
    await page.click(`#tokens tr[data-jti="${victim.jti}"] button`);
    await page.locator(`#tokens tr[data-jti="${victim.jti}"]`, { hasText: 'revoked' }).waitFor();
    await waitForRevocation();
    assert.equal((await server.fetch('/pub/nix-cache-info', { token: victim.token })).status, 401);
    assert.deepEqual(errors, []);

    // A private cache's pages show nothing to an anonymous viewer (the API answers 401).
    const anon = await browser.newPage();
    await anon.goto(`${server.url}/dashboard/hidden-team/${hashOf(paths.dep)}`);
    await anon.locator('#error').waitFor();
    assert.match(await anon.locator('#error').innerText(), /needs a token/);
    assert.doesNotMatch(await anon.locator('main').innerText(), /dash-dep/);
    await anon.close();
    passed = true;
  });
}
