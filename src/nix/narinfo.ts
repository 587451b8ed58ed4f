import { NixFormatError } from './errors.ts';
import { parseSha256 } from './hash.ts';
import { DEFAULT_STORE_DIR, parseStorePath, parseStorePathBaseName } from './store-path.ts';

/** What belongs to the store path itself (what pushers send and signatures cover), not to a file of it. */
export interface PathInfo {
  storePath: string;
  /** `sha256:<nix32>` as written in narinfos; parseSha256 also takes hex and SRI. */
  narHash: string;
  narSize: number;
  /** Base names ("<hash>-<name>"), as written in the narinfo. */
  references: string[];
  /** Base name of the deriver. */
  deriver?: string;
  sigs: string[];
  ca?: string;
}

export interface NarInfo extends PathInfo {
  url: string;
  compression: string;
  fileHash?: string;
  fileSize?: number;
  system?: string;
}

const REQUIRED = ['StorePath', 'URL', 'NarHash', 'NarSize'] as const;

function parseSize(key: string, value: string): number {
  if (!/^(0|[1-9][0-9]*)$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new NixFormatError(`invalid narinfo: ${key} '${value}' is not a non-negative integer`);
  }
  return Number(value);
}

function checkHash(key: string, value: string): string {
  try {
    parseSha256(value);
  } catch (err) {
    throw new NixFormatError(`invalid narinfo: ${key}: ${(err as Error).message}`);
  }
  return value;
}

function checkBaseName(key: string, value: string): string {
  try {
    parseStorePathBaseName(value);
  } catch (err) {
    throw new NixFormatError(`invalid narinfo: ${key}: ${(err as Error).message}`);
  }
  return value;
}

/** Reads the "Key: value" lines of a .narinfo; unknown keys are ignored so newer Nix fields don't break us. */
export function parseNarInfo(text: string, storeDir = DEFAULT_STORE_DIR): NarInfo {
  const fields = new Map<string, string>();
  const sigs: string[] = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const [i, raw] of lines.entries()) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '') continue;
    // A control character would survive into a value (e.g. a '\r' inside a Sig) that no narinfo can carry.
    if (/[\x00-\x1f\x7f]/.test(line)) throw new NixFormatError(`invalid narinfo: line ${i + 1} contains a control character`);
    const colon = line.indexOf(':');
    if (colon <= 0) {
      throw new NixFormatError(`invalid narinfo: line ${i + 1} is not of the form 'Key: value'`);
    }
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (key === 'Sig') {
      sigs.push(value);
    } else if (fields.has(key)) {
      throw new NixFormatError(`invalid narinfo: duplicate field '${key}' on line ${i + 1}`);
    } else {
      fields.set(key, value);
    }
  }
  for (const key of REQUIRED) {
    if (!fields.get(key)) throw new NixFormatError(`invalid narinfo: missing required field '${key}'`);
  }
  const get = (key: string): string | undefined => fields.get(key);

  const storePath = get('StorePath')!;
  try {
    parseStorePath(storePath, storeDir);
  } catch (err) {
    throw new NixFormatError(`invalid narinfo: StorePath: ${(err as Error).message}`);
  }
  const info: NarInfo = {
    storePath,
    url: get('URL')!,
    // Nix treats a missing Compression as bzip2 (the historical default).
    compression: get('Compression') || 'bzip2',
    narHash: checkHash('NarHash', get('NarHash')!),
    narSize: parseSize('NarSize', get('NarSize')!),
    references: (get('References') ?? '')
      .split(' ')
      .filter((r) => r !== '')
      .map((r) => checkBaseName('References', r)),
    sigs,
  };
  const fileHash = get('FileHash');
  if (fileHash !== undefined) info.fileHash = checkHash('FileHash', fileHash);
  const fileSize = get('FileSize');
  if (fileSize !== undefined) info.fileSize = parseSize('FileSize', fileSize);
  const deriver = get('Deriver');
  if (deriver !== undefined && deriver !== 'unknown-deriver') info.deriver = checkBaseName('Deriver', deriver);
  const system = get('System');
  if (system) info.system = system;
  const ca = get('CA');
  if (ca) info.ca = ca;
  return info;
}

/** Writes fields in the order Nix's NarInfo::to_string uses, so Nix-written narinfos round-trip byte for byte. */
export function formatNarInfo(info: NarInfo): string {
  const lines: string[] = [
    `StorePath: ${info.storePath}`,
    `URL: ${info.url}`,
    `Compression: ${info.compression}`,
  ];
  if (info.fileHash !== undefined) lines.push(`FileHash: ${info.fileHash}`);
  if (info.fileSize !== undefined) lines.push(`FileSize: ${info.fileSize}`);
  lines.push(`NarHash: ${info.narHash}`, `NarSize: ${info.narSize}`, `References: ${info.references.join(' ')}`);
  if (info.deriver !== undefined) lines.push(`Deriver: ${info.deriver}`);
  if (info.system !== undefined) lines.push(`System: ${info.system}`);
  for (const sig of info.sigs) lines.push(`Sig: ${sig}`);
  if (info.ca !== undefined) lines.push(`CA: ${info.ca}`);
  for (const line of lines) {
    // A newline inside a value would inject extra fields.
    if (/[\r\n]/.test(line)) throw new NixFormatError(`cannot format narinfo: line break in '${line.split(/[\r\n]/)[0]}'`);
  }
  return lines.map((l) => `${l}\n`).join('');
}
