// The fast variant of the crash-consistency soak (test/soak/crash.soak.ts): a few kills per setup.
import { test } from 'node:test';
import { crashScenario } from './crash.ts';
import { SETUPS, setupAvailable } from './support.ts';

for (const setup of SETUPS) {
  test(`SIGKILL during pushes (nix copy and loft push): nothing partial, nothing acknowledged lost, leftovers swept (${setup})`, { timeout: 300_000 }, async (t) => {
    if (!(await setupAvailable(t, setup))) return;
    const f = await crashScenario(t, setup, { pushes: 6, kills: 4, bytesPerPath: 1024 * 1024 });
    t.diagnostic(JSON.stringify(f));
  });
}
