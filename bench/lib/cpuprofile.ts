// Summarizes V8 .cpuprofile files (node --cpu-prof): self time by function and by source file.
//   node --import tsx bench/lib/cpuprofile.ts DIR_OR_FILE... [--top N]
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

async function files(target: string): Promise<string[]> {
  if ((await stat(target)).isFile()) return [target];
  const out: string[] = [];
  for (const name of (await readdir(target)).sort()) out.push(...(await files(path.join(target, name))));
  return out.filter((f) => f.endsWith('.cpuprofile'));
}

function short(url: string): string {
  const i = url.indexOf('/dist/');
  if (i >= 0) return url.slice(i + 1);
  const n = url.indexOf('node_modules/');
  if (n >= 0) return url.slice(n);
  return url.replace(/^file:\/\//, '') || '(native)';
}

export function summarize(p: Profile, top: number): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = p.endTime - p.startTime;
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    const fn = `${cf.functionName || '(anonymous)'} ${short(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    const file = cf.url ? short(cf.url) : cf.functionName;
    byFile.set(file, (byFile.get(file) ?? 0) + us);
  }
  const pct = (us: number) => `${((us / total) * 100).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(7)} ms`;
  const lines = [`wall ${(total / 1e6).toFixed(1)} s`, 'self time by function:'];
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('self time by file:');
  for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  return lines.join('\n');
}

process.stdout.on('error', () => process.exit(0)); // e.g. piped into head
if (process.argv[1]?.includes('cpuprofile')) {
  const args = process.argv.slice(2);
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 25;
  for (const target of args) {
    for (const f of await files(target)) {
      console.log(`== ${f}`);
      console.log(summarize(JSON.parse(await readFile(f, 'utf8')) as Profile, top));
    }
  }
}
