import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { NAR_MAGIC, padding } from './format.ts';

const CHUNK = 64 * 1024;
const SLASH = Buffer.from('/');

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function str(s: string | Buffer): Buffer {
  const bytes = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([u64(bytes.length), bytes, Buffer.alloc(padding(bytes.length))]);
}

/** Small framing tokens are batched so the stream is not a flood of 8-byte chunks. */
class Batch {
  #parts: Buffer[] = [];
  #size = 0;
  push(...items: (string | Buffer)[]): void {
    for (const item of items) {
      const b = str(item);
      this.#parts.push(b);
      this.#size += b.length;
    }
  }
  raw(b: Buffer): void {
    this.#parts.push(b);
    this.#size += b.length;
  }
  get size(): number {
    return this.#size;
  }
  take(): Buffer {
    const out = Buffer.concat(this.#parts);
    this.#parts = [];
    this.#size = 0;
    return out;
  }
}

async function* contents(path: Buffer, size: number, batch: Batch): AsyncGenerator<Buffer> {
  batch.push('contents');
  batch.raw(u64(size));
  yield batch.take();
  const fh = await open(path, 'r');
  try {
    let done = 0;
    while (done < size) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - done));
      const { bytesRead } = await fh.read(buf, 0, buf.length, done);
      if (bytesRead === 0) break;
      done += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
    // Nix fails the same way: a NAR whose header size disagrees with its contents would be corrupt.
    if (done !== size || (await fh.read(Buffer.alloc(1), 0, 1, done)).bytesRead !== 0) {
      throw new Error(`file '${path.toString()}' changed while being archived`);
    }
  } finally {
    await fh.close();
  }
  batch.raw(Buffer.alloc(padding(size)));
}

/** Mirrors Nix's dumpPath: lstat, sorted directory entries (byte order), S_IXUSR as the executable bit. */
async function* node(path: Buffer, batch: Batch): AsyncGenerator<Buffer> {
  const st = await lstat(path);
  batch.push('(', 'type');
  if (st.isFile()) {
    batch.push('regular');
    if (st.mode & 0o100) batch.push('executable', '');
    yield* contents(path, st.size, batch);
  } else if (st.isDirectory()) {
    batch.push('directory');
    const names = await readdir(path, { encoding: 'buffer' });
    names.sort(Buffer.compare);
    for (const name of names) {
      batch.push('entry', '(', 'name', name, 'node');
      yield* node(Buffer.concat([path, SLASH, name]), batch);
      batch.push(')');
      if (batch.size >= CHUNK) yield batch.take();
    }
  } else if (st.isSymbolicLink()) {
    batch.push('symlink', 'target', await readlink(path, { encoding: 'buffer' }));
  } else {
    throw new Error(`file '${path.toString()}' has an unsupported type`);
  }
  batch.push(')');
}

async function* archive(path: string): AsyncGenerator<Buffer> {
  const batch = new Batch();
  batch.push(NAR_MAGIC);
  yield* node(Buffer.from(path), batch);
  yield batch.take();
}

/** Streams the NAR serialisation of a file, directory or symlink, byte-identical to `nix-store --dump`. */
export function dumpPath(path: string): Readable {
  return Readable.from(archive(path), { objectMode: false });
}
