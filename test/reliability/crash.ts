// Crash consistency: pushes through the real `nix copy --to` and `loft push`, the server SIGKILLed at a
// random moment during some of them and restarted. After every restart the path of an interrupted push
// is absent or complete; at the end every acknowledged push is pulled and verified by nix, everything
// visible is intact, and a GC pass leaves no object behind once everything is deleted.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import {
  collectGarbage,
  destroyAllAndExpectEmptyStorage,
  freshStorePaths,
  nixCopyTo,
  pullAndVerify,
  sleep,
  startSubject,
  visibleAndIntact,
  type Setup,
} from './support.ts';

export interface CrashFigures {
  pushes: number;
  kills: number;
  acknowledged: number;
  /** Pushes the client reported as failed (the server was down until it gave up). */
  failed: number;
  /** Interrupted pushes whose path was nevertheless complete after the restart (acknowledged or not). */
  completedAnyway: number;
  restartMs: number[];
  /** What the GC pass after the last restart removed (the leftovers of interrupted pushes). */
  sweptAfterRestart?: Record<string, number>;
}

export async function crashScenario(
  t: TestContext,
  setup: Setup,
  o: { pushes: number; kills: number; bytesPerPath: number },
): Promise<CrashFigures> {
  const s = await startSubject(t, setup);
  const paths = await freshStorePaths(s.dir, o.pushes, o.bytesPerPath);
  // Which pushes get a kill: spread evenly, the first push always runs undisturbed (it measures).
  const killAt = new Set(Array.from({ length: o.kills }, (_, i) => 1 + Math.floor(((i + 0.5) * (o.pushes - 1)) / o.kills)));
  const figures: CrashFigures = { pushes: o.pushes, kills: 0, acknowledged: 0, failed: 0, completedAnyway: 0, restartMs: [] };
  const acknowledged: string[] = [];
  let typicalMs = 0;
  for (let i = 0; i < o.pushes; i++) {
    const storePath = paths[i];
    const viaNix = i % 2 === 0;
    const started = Date.now();
    const push = viaNix
      ? nixCopyTo(s, [storePath], `push-${i}`).then(
          () => true,
          () => false,
        )
      : runCli(['push', s.cache, storePath], { LOFT_SERVER: s.url, LOFT_TOKEN: s.adminToken }).then((r) => r.code === 0);
    let killed = false;
    if (killAt.has(i)) {
      // Anywhere from the request's start to past a typical push's end.
      const delay = Math.random() * Math.max(typicalMs, 300) * 1.2;
      const outcome = await Promise.race([push.then(() => 'finished' as const), sleep(delay).then(() => 'due' as const)]);
      if (outcome === 'due') {
        await s.kill9();
        killed = true;
        figures.kills++;
      }
    }
    if (killed) {
      // Every other kill, the server stays down until the client has given up (the push fails);
      // otherwise it restarts while the client may still be retrying (nix and loft retry failed requests).
      if (figures.kills % 2 === 0) await push;
      const restarting = Date.now();
      await s.restart();
      figures.restartMs.push(Date.now() - restarting);
    }
    const ok = await push;
    if (!killed) typicalMs = typicalMs === 0 ? Date.now() - started : (typicalMs * 3 + (Date.now() - started)) / 4;
    // Absent or complete, never partial — whatever the client was told.
    const visible = await visibleAndIntact(s, storePath);
    if (ok) {
      assert.ok(visible, `push ${i} (${viaNix ? 'nix copy' : 'loft push'}) was acknowledged, but ${storePath} is not served`);
      acknowledged.push(storePath);
    } else {
      assert.ok(killed, `push ${i} (${viaNix ? 'nix copy' : 'loft push'}) failed without a kill`);
      figures.failed++;
    }
    if (killed && visible) figures.completedAnyway++;
  }
  figures.acknowledged = acknowledged.length;
  // A final restart, and a GC pass with grace 0 that sweeps what the kills left: nothing acknowledged is
  // lost across either.
  await s.restart();
  figures.sweptAfterRestart = await collectGarbage(s);
  const visible: string[] = [];
  for (const p of paths) if (await visibleAndIntact(s, p)) visible.push(p);
  for (const p of acknowledged) assert.ok(visible.includes(p), `${p} was acknowledged but is gone after a restart`);
  await pullAndVerify(s, visible, 'final');
  await destroyAllAndExpectEmptyStorage(s);
  return figures;
}
