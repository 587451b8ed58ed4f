// Shared by the GC suites: a path pushed in one request.
import assert from 'node:assert/strict';
import type { TestServer } from '../../helpers/server.ts';
import { randomStorePath, sampleNar, uploadPathMeta } from '../../helpers/nar.ts';

/** Pushes a fresh store path named `name` (its NAR derived from the name) with `PUT /_api/v1/upload-path`. */
export async function pushPath(server: TestServer, cache: string, name: string, references: string[] = [], narBytes = 300_000) {
  const sp = randomStorePath(name);
  const nar = await sampleNar(name, narBytes);
  const res = await server.fetch('/_api/v1/upload-path', {
    method: 'PUT',
    token: server.adminToken,
    headers: {
      'content-type': 'application/octet-stream',
      'x-loft-nar-info': JSON.stringify(uploadPathMeta(cache, sp.path, nar, { references })),
    },
    body: nar,
  });
  assert.equal(res.status, 200, await res.text());
  return sp;
}
