// Keys become file paths (local) and object names (S3), so only a small, portable alphabet is allowed.
// Segments must start with [a-z0-9]: this rules out '.', '..' and names that could collide with the
// local store's own '.tmp-*' files.
const KEY_PATTERN = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/;
const PREFIX_PATTERN = /^([a-z0-9][a-z0-9._/-]*)?$/;

/** Throws unless key is slash-separated segments of [a-z0-9._-] with no '..', no empty segment and no leading '/'. */
export function assertValidKey(key: string): void {
  if (!KEY_PATTERN.test(key) || key.includes('..')) {
    throw new Error(`invalid blob key ${JSON.stringify(key)}: expected slash-separated segments of [a-z0-9._-], each starting with [a-z0-9], without '..'`);
  }
}

/** A list prefix is a key or the start of one (it may end with '/'), or empty for everything. */
export function assertValidPrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix) || prefix.includes('..') || prefix.includes('//')) {
    throw new Error(`invalid blob key prefix ${JSON.stringify(prefix)}: expected [a-z0-9._/-] without '..' or a leading '/'`);
  }
}
