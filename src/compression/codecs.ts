import { PassThrough, type Transform } from 'node:stream';
import { createBrotliDecompress } from 'node:zlib';
import { createZstdDecompressStream } from './zstd.ts';

/** The `Compression:` values of a narinfo that Loft knows about. */
export type NixCompression = 'none' | 'xz' | 'zstd' | 'br' | 'bzip2';

const EXTENSIONS: Record<NixCompression, string> = {
  none: '',
  xz: '.xz',
  zstd: '.zst',
  br: '.br',
  bzip2: '.bz2',
};

export function compressionFromExtension(fileName: string): NixCompression {
  for (const [compression, ext] of Object.entries(EXTENSIONS) as [NixCompression, string][]) {
    if (fileName.endsWith(`.nar${ext}`)) return compression;
  }
  throw new Error(`unsupported NAR file extension: ${JSON.stringify(fileName)} (expected .nar, .nar.xz, .nar.zst, .nar.br or .nar.bz2)`);
}

export function extensionFor(c: NixCompression): string {
  return EXTENSIONS[c];
}

/** Throws for a compression Loft cannot decode, before any byte is read. */
export function assertDecompressible(c: NixCompression): void {
  // No maintained bzip2 decoder installs here; Nix can upload with another compression.
  if (c === 'bzip2') throw new Error('bzip2 NARs are not supported; use compression=zstd or xz');
}

/**
 * A streaming decoder that errors on corrupt or truncated input rather than ending early. xz is
 * not one: it is decoded synchronously in a worker (XzSyncDecoder), into one reused buffer.
 */
export function createDecompressor(c: Exclude<NixCompression, 'xz'>): Transform {
  assertDecompressible(c);
  switch (c) {
    case 'none':
      return new PassThrough();
    case 'zstd':
      return createZstdDecompressStream();
    case 'br':
      return createBrotliDecompress();
    case 'bzip2':
      throw new Error('unreachable');
  }
}
