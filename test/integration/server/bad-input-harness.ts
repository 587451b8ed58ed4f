// Shared by the bad-input tests: a harness that uploads to a real server and
// checks that refused input left nothing visible.
import assert from 'node:assert/strict';
import type { TestServer } from '../../helpers/server.ts';
import { listStorageObjects } from '../../helpers/storage-objects.ts';
import { waitFor } from '../../helpers/processes.ts';
import { narInfoText, nixUpload, sampleNar } from '../../helpers/nar.ts';
import { archive, dir, file, nar } from '../../unit/nix/nar-builder.ts';
import { parseNarInfo } from '../../../src/nix/narinfo.ts';

export const METADATA_LIMIT = 8192;
export const IDLE_MS = 500;

/** Talks to one server: fresh caches per case, uploads, and the "nothing visible" checks. */
export class Harness {
  private n = 0;
  /** Rows and storage objects before the current case's refused input (see settle()). */
  private baseline: Leftovers | undefined;
  constructor(readonly server: TestServer) {}

  get token(): string {
    return this.server.adminToken;
  }

  async cache(): Promise<{ name: string; id: number }> {
    const name = `bad-${++this.n}`;
    await this.server.createCache(name);
    await this.settle();
    const row = await this.server.services.kysely.selectFrom('caches').select('id').where('name', '=', name).executeTakeFirstOrThrow();
    return { name, id: row.id };
  }

  putNar(cache: string, fileName: string, body: Buffer): Promise<Response> {
    return this.server.fetch(`/${cache}/nar/${fileName}`, {
      method: 'PUT',
      token: this.token,
      headers: { 'content-type': 'application/x-nix-nar' },
      body: new Uint8Array(body),
    });
  }

  putNarInfo(cache: string, hash: string, text: string): Promise<Response> {
    return this.server.fetch(`/${cache}/${hash}.narinfo`, {
      method: 'PUT',
      token: this.token,
      headers: { 'content-type': 'text/x-nix-narinfo' },
      body: text,
    });
  }

  uploadPath(headers: Record<string, string>, body: Buffer): Promise<Response> {
    return this.server.fetch('/_api/v1/upload-path', { method: 'PUT', token: this.token, headers, body: new Uint8Array(body) });
  }

  /** Takes what is stored now as the baseline (after a case's valid uploads, before its refused one). */
  async settle(): Promise<void> {
    this.baseline = await this.leftovers();
  }

  /**
   * Nothing was stored since the baseline: no chunk, NAR, upload or staging rows, no storage objects.
   * With `chunkedFirst` (an upload refused only once its whole body was chunked: a NarHash/NarSize or
   * file-hash mismatch found at the end), the chunks it stored may remain, but only as what garbage
   * collection is defined to reclaim: chunk rows no NAR and no staging names, in packs (or objects no
   * row names) holding nothing else — and still no NAR, upload or staging row.
   */
  async nothingLeft(opts: { chunkedFirst?: boolean } = {}): Promise<void> {
    assert.ok(this.baseline, 'cache() or settle() takes the baseline first');
    if (!opts.chunkedFirst) return this.nothingLeftSince(this.baseline);
    const before = this.baseline;
    const now = await this.leftovers();
    for (const table of ['nars', 'nar_uploads', 'chunk_stagings']) {
      assert.equal(now.rows[table], before.rows[table], `a refused upload must leave no ${table} row`);
    }
    const k = this.server.services.kysely;
    const known = new Set(before.chunkIds);
    const added = now.chunkIds.filter((id) => !known.has(id));
    if (added.length > 0) {
      const used = await k.selectFrom('nar_chunks').select('chunk_id').where('chunk_id', 'in', added).execute();
      assert.deepEqual(used, [], 'chunks of a refused upload are part of no NAR');
      const staged = await k.selectFrom('chunk_stagings').select('chunk_id').where('chunk_id', 'in', added).execute();
      assert.deepEqual(staged, [], 'chunks of a refused upload are staged for no push');
    }
    const addedSet = new Set(added);
    for (const object of now.storage.filter((o) => !before.storage.includes(o))) {
      const key = object.split(' ')[0];
      const pack = await k.selectFrom('packs').select('id').where('storage_key', '=', key).executeTakeFirst();
      if (!pack) continue; // an object no row names: the orphan sweep removes it
      const rows = await k.selectFrom('chunks').select('id').where('pack_id', '=', pack.id).execute();
      for (const r of rows) assert.ok(addedSet.has(r.id), `new pack ${key} holds only the refused upload's unreferenced chunks`);
    }
  }

  /**
   * A narinfo GET answers 404, the cache holds no object, (given its hash) no NAR row exists, and
   * nothing was stored since the baseline.
   */
  async nothingVisible(
    cache: { name: string; id: number },
    hash: string,
    narHash?: string,
    opts: { chunkedFirst?: boolean } = {},
  ): Promise<void> {
    const res = await this.server.fetch(`/${cache.name}/${hash}.narinfo`, { token: this.token });
    assert.equal(res.status, 404, `narinfo of ${hash} must stay invisible`);
    await res.arrayBuffer();
    const k = this.server.services.kysely;
    const objects = await k
      .selectFrom('objects')
      .select(({ fn }) => fn.countAll<number>().as('n'))
      .where('cache_id', '=', cache.id)
      .executeTakeFirstOrThrow();
    assert.equal(Number(objects.n), 0, 'no objects row may be written');
    if (narHash !== undefined) {
      const nars = await k
        .selectFrom('nars')
        .select(({ fn }) => fn.countAll<number>().as('n'))
        .where('nar_hash', '=', narHash)
        .executeTakeFirstOrThrow();
      assert.equal(Number(nars.n), 0, `no nars row may be written for ${narHash}`);
    }
    await this.nothingLeft(opts);
  }

  /** What a refused upload could leave behind: chunk, NAR, upload and staging rows, and storage objects. */
  async leftovers(): Promise<Leftovers> {
    const k = this.server.services.kysely;
    const rows: Record<string, number> = {};
    for (const table of ['chunks', 'nars', 'nar_uploads', 'chunk_stagings'] as const) {
      const r = await k.selectFrom(table).select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      rows[table] = Number(r.n);
    }
    const chunkIds = (await k.selectFrom('chunks').select('id').orderBy('id').execute()).map((r) => Number(r.id));
    return { rows, chunkIds, storage: await listStorageObjects(this.server.config.storage) };
  }

  /**
   * Nothing was added since `before`: waits (generously) for a server still finishing an aborted
   * request to clean up, then compares.
   */
  async nothingLeftSince(before: Leftovers): Promise<void> {
    const same = async () => JSON.stringify(await this.leftovers()) === JSON.stringify(before);
    await waitFor('the refused upload to leave nothing behind', same, 10_000, 100).catch(() => {});
    assert.deepEqual(await this.leftovers(), before, 'a refused upload left rows or storage objects behind');
  }

  /** A complete, valid nix-copy upload to `cache` succeeds and is served afterwards. */
  async stillServing(cache: string): Promise<void> {
    const up = await nixUpload(await sampleNar());
    const r1 = await this.putNar(cache, up.fileName, up.file);
    assert.equal(r1.status, 201, `valid NAR upload after bad input: ${await r1.text()}`);
    const r2 = await this.putNarInfo(cache, up.storePath.hash, narInfoText(up.narInfo));
    assert.equal(r2.status, 204, `valid narinfo upload after bad input: ${await r2.text()}`);
    const r3 = await this.server.fetch(`/${cache}/${up.storePath.hash}.narinfo`, { token: this.token });
    assert.equal(r3.status, 200);
    assert.equal(parseNarInfo(await r3.text()).narHash, up.narInfo.narHash);
  }
}

export interface Leftovers {
  rows: Record<string, number>;
  chunkIds: number[];
  storage: string[];
}

/** The response is `status` with a JSON body whose message matches `message`. */
export async function refused(res: Response, status: number, message: RegExp): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${text}`);
  let body: { message?: unknown };
  try {
    body = JSON.parse(text) as { message?: unknown };
  } catch {
    assert.fail(`error body is not JSON: ${text}`);
  }
  assert.equal(typeof body.message, 'string', `error body has no message: ${text}`);
  assert.match(body.message as string, message);
}

/** Hand-made invalid NARs, each with the parser complaint it must produce. */
export const INVALID_NARS: [string, Buffer, RegExp][] = [
  ['bad magic', nar('nix-archive-2', ...file('hello')), /invalid NAR/],
  ['unsorted directory entries', archive(dir(['b', file('1')], ['a', file('2')])), /invalid NAR.*(sort|order)/i],
  ['duplicate directory entries', archive(dir(['a', file('1')], ['a', file('2')])), /invalid NAR.*(duplicate|sort|order)/i],
  ["a '..' entry name", archive(dir(['..', file('1')])), /invalid NAR.*\.\./],
];
