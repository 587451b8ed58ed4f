// Hand-assembles NARs so the parser tests can produce exactly the malformed input they need.
type Part = string | Buffer | { raw: Buffer };

export function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function framed(s: string | Buffer): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([u64(b.length), b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
}

/** Strings and Buffers are framed as NAR strings; `{ raw }` is copied verbatim. */
export function nar(...parts: Part[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' || Buffer.isBuffer(p) ? framed(p) : p.raw)));
}

export function file(contents: string, executable = false): Part[] {
  return ['(', 'type', 'regular', ...(executable ? ['executable', ''] : []), 'contents', contents, ')'];
}

export function symlink(target: string | Buffer): Part[] {
  return ['(', 'type', 'symlink', 'target', target, ')'];
}

export function dir(...entries: [string | Buffer, Part[]][]): Part[] {
  return [
    '(',
    'type',
    'directory',
    ...entries.flatMap(([name, node]) => ['entry', '(', 'name', name, 'node', ...node, ')']),
    ')',
  ];
}

export function archive(node: Part[]): Buffer {
  return nar('nix-archive-1', ...node);
}
