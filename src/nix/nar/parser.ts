import { isUtf8 } from 'node:buffer';
import { Writable } from 'node:stream';
import { NixFormatError } from '../errors.ts';
import { MAX_NAME_BYTES, MAX_TARGET_BYTES, NAR_MAGIC, padding } from './format.ts';
import type { NarEntry } from './types.ts';

/** Directory nesting limit: keeps the parser's stack bounded for hostile input; far beyond PATH_MAX-sized trees. */
export const MAX_DEPTH = 1024;

/** What the grammar asks the byte driver for: `read` n bytes into a buffer, or `skip` n bytes of file contents. */
type Request = { kind: 'read'; n: number } | { kind: 'skip'; n: number };
type Grammar = Generator<Request, void, Buffer>;

const EMPTY = Buffer.alloc(0);

/** A directory whose entries are being read; `previous` is the last entry name, for the sort check. */
interface OpenDirectory {
  path: string;
  previous: Buffer | undefined;
}

/**
 * Names are bytes in a NAR. Valid UTF-8 decodes as such; any other byte becomes a lone surrogate
 * U+DC80..U+DCFF (Python's "surrogateescape"), which UTF-8 text can never produce, so distinct
 * names stay distinct in paths and listings (JSON writes them as "\\udcXX").
 */
export function decodeName(bytes: Buffer): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const len = utf8SequenceLength(bytes, i);
    if (len > 0) {
      out += bytes.toString('utf8', i, i + len);
      i += len;
    } else {
      out += String.fromCharCode(0xdc00 | bytes[i]);
      i += 1;
    }
  }
  return out;
}

/** Length of the well-formed UTF-8 sequence starting at `i`, or 0 if the byte there does not start one. */
function utf8SequenceLength(b: Buffer, i: number): number {
  const c = b[i];
  if (c < 0x80) return 1;
  const len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (len === 0 || i + len > b.length) return 0;
  return isUtf8(b.subarray(i, i + len)) ? len : 0;
}

/**
 * Streaming NAR validator. The grammar is a generator that yields byte requests; `_write` feeds it
 * whatever chunk sizes arrive, so memory stays bounded by the largest name/target, never file size.
 * Emits 'entry' (NarEntry) in archive order.
 */
export class NarParser extends Writable {
  /** Bytes consumed so far; also the offset used in error messages. */
  bytesSeen = 0;
  readonly #grammar: Grammar;
  #request: Request | undefined;
  #buf: Buffer = EMPTY;
  #filled = 0;
  /** Human description of what the grammar waits for, for the truncation error. */
  #expecting = `'${NAR_MAGIC}'`;

  constructor() {
    super();
    this.#grammar = this.#archive();
    this.#advance(EMPTY);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      this.#feed(chunk);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#request) {
      callback(new NixFormatError(`NAR truncated at byte ${this.bytesSeen}: expected ${this.#expecting}`));
    } else {
      callback();
    }
  }

  #feed(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      const req = this.#request;
      if (!req) throw new NixFormatError(`trailing data after the end of the NAR at byte ${this.bytesSeen}`);
      const take = Math.min(chunk.length - pos, req.n - this.#filled);
      if (req.kind === 'read') chunk.copy(this.#buf, this.#filled, pos, pos + take);
      pos += take;
      this.#filled += take;
      this.bytesSeen += take;
      if (this.#filled === req.n) this.#advance(req.kind === 'read' ? this.#buf : EMPTY);
    }
  }

  /** Resumes the grammar with the completed request and sets up the next one (zero-length ones complete at once). */
  #advance(value: Buffer): void {
    for (;;) {
      const next = this.#grammar.next(value);
      if (next.done) {
        this.#request = undefined;
        return;
      }
      const req = next.value;
      this.#request = req;
      this.#filled = 0;
      this.#buf = req.kind === 'read' ? Buffer.allocUnsafe(req.n) : EMPTY;
      if (req.n > 0) return;
      value = this.#buf;
    }
  }

  #fail(offset: number, message: string): never {
    throw new NixFormatError(`invalid NAR at byte ${offset}: ${message}`);
  }

  *#u64(what: string): Generator<Request, number, Buffer> {
    const start = this.bytesSeen;
    this.#expecting = what;
    const b = yield { kind: 'read', n: 8 };
    const hi = b.readUInt32LE(4);
    if (hi > 0x1fffff) this.#fail(start, `${what} is too large`);
    return hi * 2 ** 32 + b.readUInt32LE(0);
  }

  *#padding(len: number, what: string): Generator<Request, void, Buffer> {
    const start = this.bytesSeen;
    const pad = yield { kind: 'read', n: padding(len) };
    if (pad.some((byte) => byte !== 0)) this.#fail(start, `non-zero padding after ${what}`);
  }

  /** `len` bytes plus their zero padding (each read gets a fresh buffer, so no copy is needed). */
  *#bytes(len: number, what: string): Generator<Request, Buffer, Buffer> {
    this.#expecting = what;
    const bytes = yield { kind: 'read', n: len };
    yield* this.#padding(len, what);
    return bytes;
  }

  /** A length-prefixed string of at most `max` bytes. */
  *#string(max: number, what: string): Generator<Request, Buffer, Buffer> {
    const start = this.bytesSeen;
    const len = yield* this.#u64(`length of ${what}`);
    if (len > max) this.#fail(start, `${what} is ${len} bytes long, limit is ${max}`);
    return yield* this.#bytes(len, what);
  }

  /** One of the fixed tokens of the grammar. */
  *#token(...choices: string[]): Generator<Request, string, Buffer> {
    const start = this.bytesSeen;
    const what = choices.map((c) => `'${c}'`).join(' or ');
    const len = yield* this.#u64(what);
    if (len > Math.max(...choices.map((c) => c.length))) this.#fail(start, `expected ${what}, got a ${len}-byte string`);
    const s = (yield* this.#bytes(len, what)).toString('latin1');
    if (!choices.includes(s)) this.#fail(start, `expected ${what}, got '${s}'`);
    return s;
  }

  /**
   * The whole archive as one loop over an explicit stack of open directories, not recursion:
   * each token costs the same at any depth (nested `yield*` would resume every level per token).
   */
  *#archive(): Grammar {
    const start = this.bytesSeen;
    let magic: Buffer;
    try {
      magic = yield* this.#string(NAR_MAGIC.length, `'${NAR_MAGIC}'`);
    } catch {
      this.#fail(start, 'bad magic, not a NAR');
    }
    if (magic.toString('latin1') !== NAR_MAGIC) this.#fail(start, 'bad magic, not a NAR');

    const open: OpenDirectory[] = [];
    let path = '';
    for (;;) {
      // One node at `path`.
      yield* this.#token('(');
      yield* this.#token('type');
      const type = yield* this.#token('regular', 'directory', 'symlink');
      if (type === 'directory') {
        if (open.length >= MAX_DEPTH) this.#fail(this.bytesSeen, `directories nested deeper than ${MAX_DEPTH}`);
        this.emit('entry', { type: 'directory', path } satisfies NarEntry);
        open.push({ path, previous: undefined });
      } else {
        if (type === 'regular') yield* this.#regular(path);
        else yield* this.#symlink(path);
        yield* this.#token(')');
        if (open.length === 0) return;
        yield* this.#token(')'); // closes the directory entry holding this node
      }
      // The next entry of the innermost open directory, closing the directories that end here.
      for (;;) {
        const dir = open[open.length - 1];
        if ((yield* this.#token('entry', ')')) === 'entry') {
          yield* this.#token('(');
          yield* this.#token('name');
          const nameStart = this.bytesSeen;
          const name = yield* this.#string(MAX_NAME_BYTES, 'entry name');
          this.#checkName(name, dir.previous, dir.path, nameStart);
          dir.previous = name;
          yield* this.#token('node');
          path = dir.path === '' ? decodeName(name) : `${dir.path}/${decodeName(name)}`;
          break;
        }
        open.pop();
        if (open.length === 0) return;
        yield* this.#token(')');
      }
    }
  }

  *#regular(path: string): Generator<Request, void, Buffer> {
    const executable = (yield* this.#token('executable', 'contents')) === 'executable';
    if (executable) {
      const start = this.bytesSeen;
      const marker = yield* this.#u64("executable marker ''");
      if (marker !== 0) this.#fail(start, 'executable marker has a non-empty value');
      yield* this.#token('contents');
    }
    const size = yield* this.#u64('file size');
    this.emit('entry', { type: 'regular', path, size, executable, narOffset: this.bytesSeen } satisfies NarEntry);
    this.#expecting = `${size} bytes of contents of '${path}'`;
    yield { kind: 'skip', n: size };
    yield* this.#padding(size, `contents of '${path}'`);
  }

  *#symlink(path: string): Generator<Request, void, Buffer> {
    yield* this.#token('target');
    const start = this.bytesSeen;
    const target = yield* this.#string(MAX_TARGET_BYTES, 'symlink target');
    if (target.length === 0) this.#fail(start, `empty symlink target for '${path}'`);
    if (target.includes(0)) this.#fail(start, `NUL byte in symlink target for '${path}'`);
    this.emit('entry', { type: 'symlink', path, target: decodeName(target) } satisfies NarEntry);
  }

  #checkName(name: Buffer, previous: Buffer | undefined, dir: string, offset: number): void {
    const where = `in directory '${dir}'`;
    if (name.length === 0) this.#fail(offset, `empty entry name ${where}`);
    const text = decodeName(name);
    if (text === '.' || text === '..') this.#fail(offset, `entry name '${text}' ${where}`);
    if (name.includes(0x2f)) this.#fail(offset, `entry name '${text}' contains '/' ${where}`);
    if (name.includes(0)) this.#fail(offset, `entry name contains a NUL byte ${where}`);
    // Nix writes entries sorted; strict order also rules out duplicates.
    if (previous && Buffer.compare(previous, name) >= 0) {
      const kind = previous.equals(name) ? 'duplicate' : 'unsorted';
      this.#fail(offset, `${kind} entry '${text}' after '${decodeName(previous)}' ${where}`);
    }
  }
}
