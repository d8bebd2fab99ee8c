import { createTokenVerifier, type JwtKeyConfig, type TokenVerifier } from "../auth/verifier.ts";
import type { Config } from "../config.ts";

/** The key tokens are checked with: JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL (one is set). */
export function jwtKey(config: Config): JwtKeyConfig {
  if (config.JWT_SECRET) return { kind: "secret", secret: config.JWT_SECRET };
  if (config.JWT_PUBLIC_KEY) {
    return { kind: "public_key", pem: config.JWT_PUBLIC_KEY.replaceAll("\\n", "\n") };
  }
  return { kind: "jwks", url: config.JWT_JWKS_URL! };
}

/** The verifier of the configured key, issuer, audience and user claim. */
export async function startTokenVerifier(config: Config): Promise<TokenVerifier> {
  const key = jwtKey(config);
  const verifier = await createTokenVerifier({
    key,
    ...(config.JWT_ISSUER ? { issuer: config.JWT_ISSUER } : {}),
    ...(config.JWT_AUDIENCE ? { audience: config.JWT_AUDIENCE } : {}),
    ...(config.JWT_USER_CLAIM ? { userClaim: config.JWT_USER_CLAIM } : {}),
  });
  // The key set is fetched now, not on the first token, so that a healthy instance is ready
  // at once; the start does not wait for it (a failure is logged, and readiness asks again).
  if (key.kind === "jwks") verifier.canVerify();
  return verifier;
}
