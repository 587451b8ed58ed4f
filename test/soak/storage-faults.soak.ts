// `npm run soak`: every S3 fault three times over with 4 MiB NARs, and the full disk (see
// test/reliability/storage-faults.ts).
import { test } from 'node:test';
import { skipUnless } from '../helpers/env.ts';
import { diskFullScenario, S3_FAULTS, s3FaultScenario, tmpfsUnavailable } from '../reliability/storage-faults.ts';
import { setupAvailable } from '../reliability/support.ts';

test('soak: S3 faults × 3 rounds, 4 MiB NARs', { timeout: 1_800_000 }, async (t) => {
  if (!(await setupAvailable(t, 'postgres+s3', false))) return;
  const figures = await s3FaultScenario(t, [...S3_FAULTS, ...S3_FAULTS, ...S3_FAULTS], 4 * 1024 * 1024);
  for (const f of figures) t.diagnostic(JSON.stringify(f));
});

test('soak: a full local disk', { timeout: 300_000 }, async (t) => {
  if (!skipUnless(t, tmpfsUnavailable())) return;
  t.diagnostic(JSON.stringify(await diskFullScenario(t)));
});
