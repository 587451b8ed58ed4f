// Storage faults (see storage-faults.ts): S3 behind a fault-injecting proxy, and a full local disk.
import { test } from 'node:test';
import { skipUnless } from '../helpers/env.ts';
import { diskFullScenario, S3_FAULTS, s3FaultScenario, tmpfsUnavailable } from './storage-faults.ts';
import { setupAvailable } from './support.ts';

test('S3 faults (5xx, latency, resets, cut bodies): pushes retry or fail clearly, reads fail closed, recovery without a restart', { timeout: 600_000 }, async (t) => {
  if (!(await setupAvailable(t, 'postgres+s3', false))) return;
  for (const f of await s3FaultScenario(t, S3_FAULTS, 512 * 1024)) t.diagnostic(JSON.stringify(f));
});

test('a full local disk: the push is refused saying so, reads keep working, pushes work again once there is room', { timeout: 300_000 }, async (t) => {
  if (!skipUnless(t, tmpfsUnavailable())) return;
  t.diagnostic(JSON.stringify(await diskFullScenario(t)));
});
