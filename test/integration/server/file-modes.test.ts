// Issue 13, items 4 and 9: what `loft serve` creates on disk is private to it (directories 0700,
// files 0600), and the first start works in every token mode when the data directory does not
// exist yet. Local files exist only in embedded mode (SQLite + local storage), so this runs there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { nixUpload, narInfoText, sampleNar } from '../../helpers/nar.ts';
import { startLoft } from '../../helpers/processes.ts';
import { makeTempDir } from '../../helpers/tmp.ts';

/** Every entry under `root` with its permission bits. */
async function modesUnder(root: string): Promise<{ file: string; dir: boolean; mode: number }[]> {
  const out: { file: string; dir: boolean; mode: number }[] = [];
  const walk = async (p: string) => {
    const st = await stat(p);
    out.push({ file: path.relative(root, p) || '.', dir: st.isDirectory(), mode: st.mode & 0o777 });
    if (st.isDirectory()) for (const e of await readdir(p)) await walk(path.join(p, e));
  };
  await walk(root);
  return out;
}

const baseEnv = (dataDir: string): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: process.env.HOME, LOFT_DATA_DIR: dataDir });

test('the data directory, database, token files and chunk files are created 0700/0600', { timeout: 120_000 }, async (t) => {
  const tmp = await makeTempDir('loft-modes-');
  t.after(() => tmp.cleanup());
  const dataDir = path.join(tmp.path, 'not', 'yet', 'there');
  const loft = await startLoft({ mode: 'monolithic', env: baseEnv(dataDir) });
  t.after(() => loft.kill('SIGKILL'));
  const token = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();

  // One push through the default cache, so chunk files exist.
  const up = await nixUpload(await sampleNar(undefined, 300_000));
  const auth = { authorization: `Bearer ${token}` };
  const nar = await fetch(`${loft.url}/main/nar/${up.fileName}`, { method: 'PUT', headers: auth, body: new Uint8Array(up.file) });
  assert.equal(nar.status, 201, await nar.text());
  const info = await fetch(`${loft.url}/main/${up.storePath.hash}.narinfo`, { method: 'PUT', headers: auth, body: narInfoText(up.narInfo) });
  assert.equal(info.status, 204, await info.text());

  const entries = await modesUnder(dataDir);
  const names = entries.map((e) => e.file);
  for (const expected of ['loft.db', 'admin-token', 'token-secret', 'storage']) assert.ok(names.includes(expected), `${expected} in ${names.join(', ')}`);
  assert.ok(entries.filter((e) => !e.dir && e.file.startsWith('storage')).length > 0, 'chunk files were written');
  for (const e of entries) assert.equal(e.mode, e.dir ? 0o700 : 0o600, `${e.file} is ${e.mode.toString(8)}`);
  // The directories above the data directory were created by Loft too.
  assert.equal((await stat(path.join(tmp.path, 'not'))).mode & 0o777, 0o700);
});

test('first start in RS256 mode creates the missing data directory', { timeout: 120_000 }, async (t) => {
  const tmp = await makeTempDir('loft-rs256-');
  t.after(() => tmp.cleanup());
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyFile = path.join(tmp.path, 'token-key.pem');
  await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const dataDir = path.join(tmp.path, 'data');
  const loft = await startLoft({
    mode: 'monolithic',
    env: { ...baseEnv(dataDir), LOFT_TOKEN_ALGORITHM: 'RS256', LOFT_TOKEN_PRIVATE_KEY_FILE: keyFile },
  });
  t.after(() => loft.kill('SIGKILL'));
  const token = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
  const res = await fetch(`${loft.url}/_api/v1/cache-config/main`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, await res.text());
  assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
});
