/**
 * Strict standard base64 (padding optional). Buffer.from(s, 'base64') silently
 * skips junk, which would let a typo in a secret or header go unnoticed.
 */
export function decodeBase64Strict(s: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  const bytes = Buffer.from(s, 'base64');
  const unpadded = (x: string) => x.replace(/=+$/, '');
  return unpadded(bytes.toString('base64')) === unpadded(s) ? bytes : undefined;
}
