import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NixFormatError } from '../errors.ts';
import { NarParser } from './parser.ts';
import type { NarEntry } from './types.ts';

export type ListingNode =
  | { type: 'regular'; size: number; executable?: true; narOffset: number }
  | { type: 'directory'; entries: Record<string, ListingNode> }
  | { type: 'symlink'; target: string };

/** The `.ls` document Nix writes next to NARs (write-nar-listing=true). */
export interface NarListing {
  version: 1;
  root: ListingNode;
}

function toNode(entry: NarEntry): ListingNode {
  switch (entry.type) {
    case 'regular': {
      // Key order follows Nix's listNar so JSON.stringify output looks the same.
      return entry.executable
        ? { type: 'regular', size: entry.size, executable: true, narOffset: entry.narOffset }
        : { type: 'regular', size: entry.size, narOffset: entry.narOffset };
    }
    case 'directory':
      return { type: 'directory', entries: {} };
    case 'symlink':
      return { type: 'symlink', target: entry.target };
  }
}

/** Assembles parser entries (parents before children, as in a NAR) into the nested listing. */
export function buildListing(entries: Iterable<NarEntry>): NarListing {
  let root: ListingNode | undefined;
  const dirs = new Map<string, Record<string, ListingNode>>();
  for (const entry of entries) {
    const node = toNode(entry);
    if (node.type === 'directory') dirs.set(entry.path, node.entries);
    if (entry.path === '') {
      if (root) throw new NixFormatError('NAR listing: more than one root entry');
      root = node;
      continue;
    }
    const slash = entry.path.lastIndexOf('/');
    const parent = dirs.get(slash === -1 ? '' : entry.path.slice(0, slash));
    const name = entry.path.slice(slash + 1);
    if (!parent) throw new NixFormatError(`NAR listing: no parent directory for '${entry.path}'`);
    if (Object.hasOwn(parent, name)) throw new NixFormatError(`NAR listing: duplicate entry '${entry.path}'`);
    // defineProperty, not assignment: a file named "__proto__" must become an ordinary key.
    Object.defineProperty(parent, name, { value: node, enumerable: true, writable: true, configurable: true });
  }
  if (!root) throw new NixFormatError('NAR listing: no root entry');
  return { version: 1, root };
}

/** Parses (and thereby validates) a whole NAR stream and returns its listing. */
export async function listNar(input: Readable | AsyncIterable<Uint8Array>): Promise<NarListing> {
  const entries: NarEntry[] = [];
  const parser = new NarParser();
  parser.on('entry', (entry: NarEntry) => entries.push(entry));
  await pipeline(input, parser);
  return buildListing(entries);
}
