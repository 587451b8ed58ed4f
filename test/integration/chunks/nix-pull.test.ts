// Paths pushed with pushNar are substituted by the real `nix` with signatures required.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after } from 'node:test';
import { nixUnavailable, skipUnless } from '../../helpers/env.ts';
import { buildCorpus, nix, nixEnv } from '../../helpers/nix.ts';
import { makeTempDir } from '../../helpers/tmp.ts';
import { dumpPath } from '../../../src/nix/nar/writer.ts';
import { pushNar, type NarMeta } from '../../../src/client/push-nar.ts';
import { queryPathInfos } from '../../../src/cli/push/closure.ts';
import { narMeta } from '../../../src/cli/push/run.ts';
import { clientFor, onEachDatabase, sharedPool } from './support.ts';

const pool = sharedPool();
after(() => pool.close());

/** The push metadata the `loft` client itself derives from the local Nix. */
async function metadataOf(storePath: string): Promise<NarMeta> {
  const [info] = await queryPathInfos([storePath], false);
  return narMeta(info);
}

onEachDatabase(
  'nix substitutes and verifies paths pushed as chunks',
  async (t, server) => {
    if (!skipUnless(t, nixUnavailable())) return;
    const corpus = await buildCorpus(['tree', 'big'], { bigMiB: 16 });
    const key = await server.createCache('chunked', { is_public: true });
    const client = clientFor(server);
    for (const p of [corpus.tree, corpus.big]) {
      const started = Date.now();
      const r = await pushNar(client, 'chunked', await metadataOf(p), dumpPath(p), { pool });
      t.diagnostic(`${path.basename(p)}: ${r.narSize} bytes, ${r.chunks} chunks, ${r.uploadedBytes} bytes sent, ${Date.now() - started} ms`);
    }

    const tmp = await makeTempDir('loft-chunks-nix-');
    t.after(() => tmp.cleanup());
    const store = path.join(tmp.path, 'store');
    const env = nixEnv(tmp.path);
    const roots = [corpus.tree, corpus.big];
    await nix(
      ['--store', store, '-r', ...roots, '--option', 'substituters', `${server.url}/chunked`,
        '--option', 'trusted-public-keys', key, '--option', 'require-sigs', 'true'],
      env,
      'nix-store',
    );
    await nix(['store', 'verify', '--store', store, '--trusted-public-keys', key, ...roots], env);
    const pulled = (await nix(['--store', store, '-qR', ...roots], env, 'nix-store')).split('\n');
    assert.deepEqual(pulled.sort(), [...roots].sort());
  },
  { timeout: 300_000 },
);
