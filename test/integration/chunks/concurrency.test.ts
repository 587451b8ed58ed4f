// Racing pushes record each chunk once (a racer's own copy is dead bytes in its pack, for compaction),
// and no NAR row is left half-recorded.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { sql } from 'kysely';
import { deterministicBytes, makeNar } from '../../helpers/nar.ts';
import type { TestServer } from '../../helpers/server.ts';
import { pushNar } from '../../../src/client/push-nar.ts';
import { chunksOf, clientFor, countPackObjects, countRows, metaOf, onEachDatabase, piecesOf, sharedPool } from './support.ts';

const pool = sharedPool();
after(() => pool.close());

async function assertStoredOnce(server: TestServer, nars: Buffer[]) {
  const distinct = new Set(nars.flatMap((n) => chunksOf(n).map((c) => c.hash)));
  assert.equal(await countRows(server, 'chunks'), distinct.size);
  assert.equal(await countPackObjects(server), await countRows(server, 'packs'), 'every pack object has its row');
  const orphans = await sql<{ n: number }>`select count(*) as n from nar_chunks where nar_id not in (select id from nars)`.execute(
    server.services.kysely,
  );
  assert.equal(Number(orphans.rows[0].n), 0);
}

onEachDatabase(
  'concurrent pushes of the same NAR, and of two NARs sharing most chunks',
  async (t, server) => {
    await server.createCache('main');
    const client = clientFor(server);
    const shared = deterministicBytes('race-shared', 3_000_000);
    const nar = await makeNar({ data: shared });
    const push = (n: Buffer) => pushNar(client, 'main', metaOf(n), piecesOf(n), { pool, windowChunks: 8 });

    await t.test('the same NAR twice at once', async () => {
      const results = await Promise.all([push(nar), push(nar)]);
      assert.ok(results.every((r) => r.narSize === nar.length));
      await assertStoredOnce(server, [nar]);
      assert.equal(await countRows(server, 'nars'), 1);
      assert.equal(await countRows(server, 'objects'), 2);
      assert.equal(await countRows(server, 'nar_chunks'), chunksOf(nar).length);
    });

    await t.test('two NARs sharing most chunks at once', async () => {
      const a = await makeNar({ data: shared, a: 'only in a' });
      const b = await makeNar({ data: shared, b: deterministicBytes('only-b', 200_000) });
      await Promise.all([push(a), push(b)]);
      await assertStoredOnce(server, [nar, a, b]);
      assert.equal(await countRows(server, 'nars'), 3);
      const expected = [nar, a, b].reduce((sum, n) => sum + chunksOf(n).length, 0);
      assert.equal(await countRows(server, 'nar_chunks'), expected);
    });
  },
  { timeout: 120_000 },
);
