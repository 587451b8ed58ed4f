// `npm run soak`: 50 concurrent clients for 60 s per setup against the compiled build, as `npm start`
// runs it (see test/reliability/load.ts; the figures go to docs/reliability.md).
import { test } from 'node:test';
import { loadScenario } from '../reliability/load.ts';
import { SETUPS, setupAvailable } from '../reliability/support.ts';

for (const setup of SETUPS) {
  test(`soak: 50 clients × 60 s (${setup})`, { timeout: 600_000 }, async (t) => {
    if (!(await setupAvailable(t, setup, false))) return;
    t.diagnostic(JSON.stringify(await loadScenario(t, setup, { clients: 50, seconds: 60, dist: true })));
  });
}
