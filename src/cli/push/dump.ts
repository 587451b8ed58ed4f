import { spawn } from 'node:child_process';
import { oneLine } from './closure.ts';

/**
 * Streams `nix-store --dump PATH`. The pipe's backpressure keeps memory flat; the
 * stream fails after its last bytes when the dump exits non-zero, so a truncated NAR
 * is never committed. Stopping early kills the process.
 */
export async function* dumpNar(path: string): AsyncGenerator<Uint8Array> {
  const child = spawn('nix-store', ['--dump', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => stderr.push(b));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`nix-store --dump: ${e.message}`)));
    child.on('close', (code) => resolve(code));
  });
  exited.catch(() => {}); // surfaced below, after the output
  try {
    yield* child.stdout;
    const code = await exited;
    if (code !== 0) throw new Error(`nix-store --dump exited with code ${code}: ${oneLine(Buffer.concat(stderr))}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  }
}
