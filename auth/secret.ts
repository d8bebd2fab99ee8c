/** HS256 needs a key at least as long as its SHA-256 output (RFC 7518, section 3.2). */
const MIN_SECRET_BYTES = 32;

/**
 * The HS256 key bytes of `secret` (UTF-8). Throws an `Error` when the secret is shorter than
 * 32 bytes: that is a configuration mistake, not a bad token.
 */
export function hs256Key(secret: string): Uint8Array {
  const key = new TextEncoder().encode(secret);
  if (key.byteLength < MIN_SECRET_BYTES) {
    throw new Error(
      `JWT secret must be at least ${MIN_SECRET_BYTES} bytes for HS256; got ${key.byteLength}`,
    );
  }
  return key;
}
