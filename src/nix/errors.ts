/** Thrown for every malformed or invalid Nix artefact (store path, hash, narinfo, key, NAR). */
export class NixFormatError extends Error {
  override name = 'NixFormatError';
}
