import { SignJWT } from "jose";
import { hs256Key } from "./secret.ts";

/** Claims a development token may carry beyond the user id. */
export interface DevTokenOptions {
  /** Lifetime from now; negative makes an already expired token. Default 3600. */
  ttlSeconds?: number;
  issuer?: string;
  audience?: string;
}

/**
 * Signs an HS256 JWT for `userId` with claims `user_id`, `sub`, `iat` and `exp` (plus `iss` /
 * `aud` when given), for development tools and tests. Throws an `Error` when the secret is
 * shorter than 32 bytes or `ttlSeconds` is not an integer.
 */
export async function signDevToken(
  secret: string,
  userId: string,
  options: DevTokenOptions = {},
): Promise<string> {
  const ttlSeconds = options.ttlSeconds ?? 3600;
  if (!Number.isInteger(ttlSeconds)) {
    throw new Error(`ttlSeconds must be an integer; got ${ttlSeconds}`);
  }
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ user_id: userId })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(userId)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds);
  if (options.issuer !== undefined) jwt.setIssuer(options.issuer);
  if (options.audience !== undefined) jwt.setAudience(options.audience);
  return await jwt.sign(hs256Key(secret));
}

/**
 * The `iss` and `aud` a development token needs for a service that checks them (JWT_ISSUER,
 * JWT_AUDIENCE): without them it refuses the token.
 */
export function checkedClaims(
  settings: { JWT_ISSUER?: string | undefined; JWT_AUDIENCE?: string | undefined },
): Pick<DevTokenOptions, "issuer" | "audience"> {
  return {
    ...(settings.JWT_ISSUER ? { issuer: settings.JWT_ISSUER } : {}),
    ...(settings.JWT_AUDIENCE ? { audience: settings.JWT_AUDIENCE } : {}),
  };
}
