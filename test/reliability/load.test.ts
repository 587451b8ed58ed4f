// The fast variant of the load soak (test/soak/load.soak.ts): 50 clients for 5 s.
import { test } from 'node:test';
import { loadScenario } from './load.ts';
import { SETUPS, setupAvailable } from './support.ts';

for (const setup of SETUPS) {
  test(`50 concurrent clients mixing narinfo, NAR downloads and pushes for 5 s: no 5xx but 503, no dropped connection (${setup})`, { timeout: 180_000 }, async (t) => {
    if (!(await setupAvailable(t, setup, false))) return;
    t.diagnostic(JSON.stringify(await loadScenario(t, setup, { clients: 50, seconds: 5 })));
  });
}
