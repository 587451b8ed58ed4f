// The client side of the memory bench, as its own process so its peak RSS is its own:
// `push` pushes a generated NAR of SIZE bytes with pushNar (Loft's client library); `pull` GETs it
// back as a stream (body hashed and discarded). Prints one JSON line with the process's peak RSS.
//   node dist/bench/lib/memory-client.js URL TOKEN CACHE SIZE push|pull
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { LoftClient } from '../../src/client/http.ts';
import { pushNar } from '../../src/client/push-nar.ts';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';

const PIECE = 1024 * 1024;
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

function narString(s: string | Buffer): Buffer {
  const body = typeof s === 'string' ? Buffer.from(s) : s;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(body.length));
  return Buffer.concat([len, body, Buffer.alloc((8 - (body.length % 8)) % 8)]);
}

/**
 * A NAR holding one regular file of `size` bytes: 1 MiB pieces, 3 in 5 AES-CTR keystream
 * (incompressible), the rest that keystream as hex text (compresses ~2:1). Same bytes every call.
 */
export async function* generatedNar(size: number): AsyncGenerator<Buffer> {
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(PIECE);
  const header = Buffer.alloc(8);
  header.writeBigUInt64LE(BigInt(size));
  yield Buffer.concat(['nix-archive-1', '(', 'type', 'regular', 'contents'].map(narString).concat(header));
  let left = size;
  for (let i = 0; left > 0; i++) {
    const n = Math.min(PIECE, left);
    const piece = i % 5 < 3 ? cipher.update(zeros.subarray(0, n)) : Buffer.from(cipher.update(zeros.subarray(0, (n + 1) >> 1)).toString('hex').slice(0, n));
    left -= n;
    yield piece;
  }
  yield Buffer.concat([Buffer.alloc((8 - (size % 8)) % 8), narString(')')]);
}

async function peakRss(): Promise<number> {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(await readFile('/proc/self/status', 'utf8'));
  return Number(m?.[1] ?? NaN) * 1024;
}

async function main(): Promise<void> {
  const [url, token, cache, sizeArg, mode] = process.argv.slice(2);
  const size = Number(sizeArg);
  const hasher = createHash('sha256');
  let narSize = 0;
  for await (const piece of generatedNar(size)) {
    hasher.update(piece);
    narSize += piece.length;
  }
  const narHash = formatSha256Nix32(hasher.digest());
  // Back to the current RSS: the figure is the push's or the pull's own peak.
  await writeFile('/proc/self/clear_refs', '5').catch(() => {});
  const baseline = await peakRss();
  const t0 = performance.now();
  if (mode === 'push') {
    let storeHash = '';
    for (const b of randomBytes(32)) storeHash += NIX32[b % 32];
    const client = new LoftClient({ endpoint: url, token });
    const pushed = await pushNar(
      client,
      cache,
      { storePath: `/nix/store/${storeHash}-loft-bench-2g`, narHash, narSize, references: [], sigs: [] },
      generatedNar(size),
    );
    const ms = performance.now() - t0;
    console.log(JSON.stringify({ mode, narSize, narHash, baseline, ms, peak: await peakRss(), uploadedBytes: pushed.uploadedBytes }));
    return;
  }
  const res = await fetch(`${url}/${cache}/nar/${narHash.replace(/^sha256:/, '')}.nar`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok || !res.body) throw new Error(`GET .nar: HTTP ${res.status}`);
  const check = createHash('sha256');
  let pulled = 0;
  for await (const piece of res.body) {
    check.update(piece);
    pulled += piece.length;
  }
  const ms = performance.now() - t0;
  if (pulled !== narSize || formatSha256Nix32(check.digest()) !== narHash) throw new Error('pulled NAR differs from the pushed one');
  console.log(JSON.stringify({ mode, narSize, narHash, baseline, ms, peak: await peakRss() }));
}

if (process.argv[1]?.includes('memory-client')) await main();
