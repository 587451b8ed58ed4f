// Load: concurrent clients on loopback mixing narinfo lookups, NAR downloads (checked byte for byte)
// and pushes (PUT /_api/v1/upload-path of fresh NARs) against a `loft serve` child process. No 5xx
// but 503 back-pressure, no dropped connection; latencies and the server's peak RSS are the figures.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import { deterministicBytes, makeNar, randomStorePath, uploadPathMeta, nix32Of } from '../helpers/nar.ts';
import { percentile, startSubject, type Setup, type Subject } from './support.ts';

type Op = 'narinfo' | 'nar' | 'push';

export interface LoadFigures {
  setup: Setup;
  clients: number;
  seconds: number;
  requests: Record<Op, number>;
  /** Per operation: p50 / p99 / max in ms. */
  latencyMs: Record<Op, { p50: number; p99: number; max: number }>;
  statuses: Record<string, number>;
  throughputPerSecond: number;
  serverPeakRssMiB: number;
}

interface Stored {
  hash: string;
  narNix32: string;
  sha256: string;
  size: number;
}

async function push(s: Subject, nar: Buffer, name: string): Promise<{ status: number; text: string; hash: string }> {
  const sp = randomStorePath(name);
  const res = await s.fetch('/_api/v1/upload-path', {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'x-loft-nar-info': JSON.stringify(uploadPathMeta(s.cache, sp.path, nar)) },
    body: new Uint8Array(nar),
  });
  return { status: res.status, text: await res.text(), hash: sp.hash };
}

/** Peak resident set of a process so far (VmHWM), in MiB. */
async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
  return Math.round((kb / 1024) * 10) / 10;
}

export async function loadScenario(t: TestContext, setup: Setup, o: { clients: number; seconds: number; dist?: boolean }): Promise<LoadFigures> {
  const s = await startSubject(t, setup, { dist: o.dist });
  // What the readers read: 16 paths of 512 KiB–1.5 MiB.
  const stored: Stored[] = [];
  for (let i = 0; i < 16; i++) {
    const nar = await makeNar({ data: deterministicBytes(`load-${setup}-${i}-${Date.now()}`, (512 + 64 * i) * 1024) });
    const r = await push(s, nar, `load-${i}`);
    assert.equal(r.status, 200, r.text);
    stored.push({ hash: r.hash, narNix32: nix32Of(nar), sha256: createHash('sha256').update(nar).digest('hex'), size: nar.length });
  }
  // What the pushers push: fresh 64–192 KiB NARs, made before the clock starts.
  const fresh: Buffer[] = [];
  for (let i = 0; i < Math.max(40, o.seconds * 8); i++) {
    fresh.push(await makeNar({ data: deterministicBytes(`load-push-${setup}-${i}-${Date.now()}`, (64 + (i % 3) * 64) * 1024) }));
  }

  const latencies: Record<Op, number[]> = { narinfo: [], nar: [], push: [] };
  const statuses: Record<string, number> = {};
  const failures: string[] = [];
  const count = (op: Op, status: number | string) => {
    const k = `${op} ${status}`;
    statuses[k] = (statuses[k] ?? 0) + 1;
  };
  const deadline = Date.now() + o.seconds * 1000;
  let pushed = 0;
  const client = async (id: number) => {
    for (let n = 0; Date.now() < deadline; n++) {
      const roll = (id * 7 + n * 13) % 10; // 6 narinfo : 3 NAR : 1 push, interleaved per client
      const op: Op = roll < 6 ? 'narinfo' : roll < 9 ? 'nar' : 'push';
      const target = stored[(id + n) % stored.length];
      const started = performance.now();
      try {
        if (op === 'narinfo') {
          const res = await fetch(`${s.url}/${s.cache}/${target.hash}.narinfo`);
          const text = await res.text();
          count(op, res.status);
          if (res.status === 200 && !text.includes(`NarSize: ${target.size}`)) failures.push(`narinfo of ${target.hash}: ${text}`);
        } else if (op === 'nar') {
          const res = await fetch(`${s.url}/${s.cache}/nar/${target.narNix32}.nar`);
          const body = Buffer.from(await res.arrayBuffer());
          count(op, res.status);
          if (res.status === 200 && createHash('sha256').update(body).digest('hex') !== target.sha256) failures.push(`NAR ${target.narNix32}: wrong bytes (${body.length})`);
        } else {
          const nar = fresh[pushed++ % fresh.length];
          const r = await push(s, nar, `load-push-${id}`);
          count(op, r.status);
          if (r.status >= 500 && r.status !== 503) failures.push(`push: ${r.status} ${r.text}`);
        }
      } catch (err) {
        count(op, 'error');
        failures.push(`${op}: ${(err as Error).message} ${String((err as Error).cause ?? '')}`);
      }
      latencies[op].push(performance.now() - started);
    }
  };
  const began = Date.now();
  await Promise.all(Array.from({ length: o.clients }, (_, i) => client(i)));
  const elapsed = (Date.now() - began) / 1000;
  const serverPeakRssMiB = await peakRssMiB(s.proc().child.pid!);

  for (const [k, n] of Object.entries(statuses)) {
    const status = Number(k.split(' ')[1]);
    if (status >= 500 && status !== 503) failures.push(`${n} × ${k}`);
  }
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} failures under load`);
  for (const op of ['narinfo', 'nar', 'push'] as const) assert.ok(latencies[op].length > 0, `no ${op} request ran`);
  // Everything stays served after the load.
  for (const x of stored) assert.equal((await fetch(`${s.url}/${s.cache}/${x.hash}.narinfo`)).status, 200);
  const total = latencies.narinfo.length + latencies.nar.length + latencies.push.length;
  const summary = (v: number[]) => ({ p50: Math.round(percentile(v, 50)), p99: Math.round(percentile(v, 99)), max: Math.round(Math.max(...v)) });
  return {
    setup,
    clients: o.clients,
    seconds: Math.round(elapsed * 10) / 10,
    requests: { narinfo: latencies.narinfo.length, nar: latencies.nar.length, push: latencies.push.length },
    latencyMs: { narinfo: summary(latencies.narinfo), nar: summary(latencies.nar), push: summary(latencies.push) },
    statuses,
    throughputPerSecond: Math.round(total / elapsed),
    serverPeakRssMiB,
  };
}
