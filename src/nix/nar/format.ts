/** Constants of the NAR wire format shared by the parser and the writer. */
export const NAR_MAGIC = 'nix-archive-1';

/** Strings are padded with zero bytes to a multiple of 8. */
export function padding(len: number): number {
  return (8 - (len % 8)) % 8;
}

/** Nix's own limits for names and symlink targets (NAME_MAX, PATH_MAX). */
export const MAX_NAME_BYTES = 255;
export const MAX_TARGET_BYTES = 4096;
