// `npm run soak`: crash consistency over 120 pushes per setup, a third of them SIGKILLed (see
// test/reliability/crash.ts; the figures go to docs/reliability.md).
import { test } from 'node:test';
import { crashScenario } from '../reliability/crash.ts';
import { SETUPS, setupAvailable } from '../reliability/support.ts';

for (const setup of SETUPS) {
  test(`soak: 120 pushes, 40 SIGKILLs (${setup})`, { timeout: 3_600_000 }, async (t) => {
    if (!(await setupAvailable(t, setup))) return;
    const f = await crashScenario(t, setup, { pushes: 120, kills: 40, bytesPerPath: 4 * 1024 * 1024 });
    t.diagnostic(JSON.stringify(f));
  });
}
