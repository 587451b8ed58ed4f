/**
 * Everything Loft creates on disk is for its own process only: the database holds signing keys in
 * plaintext, the data directory holds the admin token and token secret, and chunk files are the
 * contents of private caches.
 */
export const PRIVATE_DIR = 0o700;
export const PRIVATE_FILE = 0o600;
