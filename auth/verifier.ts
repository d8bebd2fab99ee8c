import {
  decodeProtectedHeader,
  errors,
  importSPKI,
  type JWSAlgorithm,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from "jose";
import { ChatError } from "../chat/errors.ts";
import { MAX_USER_ID_LENGTH } from "../chat/types.ts";
import { createJwksKeys } from "./jwks.ts";
import { hs256Key } from "./secret.ts";

/** The authenticated user behind a token. */
export interface Principal {
  userId: string;
  /**
   * When the token stops being valid here, in ms since the epoch: `exp` plus the clock
   * tolerance, the moment `verify` would refuse it as expired.
   */
  expiresAt: number;
}

/** Where the verification key comes from; each kind accepts only its own algorithms. */
export type JwtKeyConfig =
  /** HS256 with a shared secret of at least 32 bytes. */
  | { kind: "secret"; secret: string }
  /** An SPKI PEM; RS256 for an RSA key, ES256 for an EC P-256 key. */
  | { kind: "public_key"; pem: string }
  /** A remote JWKS; RS256 and ES256 accepted. The last set fetched outlives an outage. */
  | { kind: "jwks"; url: string };

/** How tokens are checked; see the protocol's "Authentication" section. */
export interface VerifierOptions {
  key: JwtKeyConfig;
  /** When set, `iss` must equal it. */
  issuer?: string;
  /** When set, `aud` must contain it. */
  audience?: string;
  /** The user id claim. Default: `user_id` when the token has it, else `sub`. */
  userClaim?: string;
  /** Longer tokens are refused before parsing. Default 8192. */
  maxTokenLength?: number;
  /** Allowed clock skew for `exp` and `nbf`. Default 5. */
  clockToleranceSeconds?: number;
}

/** Turns a token into a `Principal`. */
export interface TokenVerifier {
  /**
   * Resolves the token's principal; rejects with `AuthError` ("missing", "invalid", "expired").
   * A token with a `token_type` claim other than "access" (a simplejwt refresh token) is invalid.
   * Rejects with ChatError `unavailable` when the JWKS cannot be fetched and no key set is held,
   * or a token issued since the JWKS was fetched (under 30 s ago) finds no key there to verify
   * it: that says nothing about the token.
   */
  verify(token: string): Promise<Principal>;
  /**
   * Whether tokens can be checked at all: always with a secret or a PEM; with a JWKS, once a
   * key set is held (fetching one while none is, not again within 10 s of a failure; a set
   * once held keeps this true through an outage of the endpoint). Never rejects.
   */
  canVerify(): Promise<boolean>;
}

/** Why a token was refused: absent, expired, or anything else wrong with it. */
export type AuthErrorCode = "missing" | "invalid" | "expired";

/** A refused token. `cause` holds the underlying jose error, when there is one. */
export class AuthError extends Error {
  override readonly name = "AuthError";
  readonly code: AuthErrorCode;

  constructor(code: AuthErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
  }
}

const DEFAULT_MAX_TOKEN_LENGTH = 8192;
const DEFAULT_CLOCK_TOLERANCE_SECONDS = 5;
/** Tried in order; the first that imports the key decides the one accepted algorithm. */
const PEM_ALGORITHMS = ["RS256", "ES256"] as const;
/** jose refuses RS256 keys below this at verify time; we refuse them at creation instead. */
const MIN_RSA_MODULUS_BITS = 2048;

/** jose's key type, named through jose: it is node's CryptoKey once @types/node is loaded (grpc). */
type PublicKey = Awaited<ReturnType<typeof importSPKI>>;
type VerificationKey = Uint8Array | PublicKey | JWTVerifyGetKey;

interface ResolvedKey {
  key: VerificationKey;
  algorithms: JWSAlgorithm[];
  /** Absent when the key is always at hand. */
  held?: () => Promise<boolean>;
  /** With a JWKS: see `JwksKeys.refetched`. */
  refetched?: (token: string, cause: unknown) => Promise<boolean>;
}

/**
 * Builds a verifier for the configured key. Throws an `Error` on a configuration mistake: an
 * HS256 secret shorter than 32 bytes, a PEM that is not an RSA or EC P-256 SPKI key, a JWKS
 * URL that is not http(s), or an out-of-range option.
 */
export async function createTokenVerifier(options: VerifierOptions): Promise<TokenVerifier> {
  const maxTokenLength = options.maxTokenLength ?? DEFAULT_MAX_TOKEN_LENGTH;
  const clockTolerance = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  if (!Number.isInteger(maxTokenLength) || maxTokenLength < 1) {
    throw new Error(`maxTokenLength must be a positive integer; got ${maxTokenLength}`);
  }
  if (!Number.isFinite(clockTolerance) || clockTolerance < 0) {
    throw new Error(`clockToleranceSeconds must be >= 0; got ${clockTolerance}`);
  }
  for (const name of ["issuer", "audience", "userClaim"] as const) {
    if (options[name] === "") throw new Error(`${name} must not be empty when given`);
  }

  const resolved = await resolveKey(options.key);
  const { algorithms, held } = resolved;
  const verifyOptions: JWTVerifyOptions = { algorithms, requiredClaims: ["exp"], clockTolerance };
  if (options.issuer !== undefined) verifyOptions.issuer = options.issuer;
  if (options.audience !== undefined) verifyOptions.audience = options.audience;

  return {
    async verify(token) {
      if (token.length === 0) throw new AuthError("missing", "no token given");
      if (token.length > maxTokenLength) {
        throw new AuthError("invalid", `token is longer than ${maxTokenLength} characters`);
      }
      let payload: JWTPayload;
      try {
        payload = await verifiedPayload(token, resolved, verifyOptions);
      } catch (error) {
        if (error instanceof ChatError) throw error;
        throw error instanceof errors.JWTExpired
          ? new AuthError("expired", "token has expired", { cause: error })
          : new AuthError("invalid", "token was refused", { cause: error });
      }
      // jose has already required `exp` to be a number; this only narrows the type.
      if (payload.exp === undefined) throw new AuthError("invalid", "token has no exp claim");
      // Django simplejwt signs its refresh tokens with the same key as its access tokens and
      // tells them apart by `token_type` alone; tokens of other issuers carry none.
      if (Object.hasOwn(payload, "token_type") && payload.token_type !== "access") {
        throw new AuthError("invalid", "token is not an access token");
      }
      // A socket lives as long as its token would pass the handshake: closed at `exp` itself, a
      // socket whose token was taken within the tolerance (the client's clock a little behind
      // ours) would be closed as it opened, and the client would take its token for refused.
      const expiresAt = (payload.exp + clockTolerance) * 1000;
      return { userId: userIdOf(payload, options.userClaim), expiresAt };
    },
    canVerify: held ?? (() => Promise.resolve(true)),
  };
}

/**
 * The token's claims once its signature and claims check out. A token without `kid` names no key
 * to look for: signed by a key the JWKS published since the set held was fetched, it fails its
 * signature, and is checked again with a set fetched anew (see `JwksKeys.refetched`).
 */
async function verifiedPayload(
  token: string,
  resolved: ResolvedKey,
  options: JWTVerifyOptions,
): Promise<JWTPayload> {
  try {
    return await payloadOf(token, resolved.key, options);
  } catch (error) {
    if (
      !(error instanceof errors.JWSSignatureVerificationFailed) ||
      resolved.refetched === undefined || decodeProtectedHeader(token).kid !== undefined ||
      !(await resolved.refetched(token, error))
    ) throw error;
    return await payloadOf(token, resolved.key, options);
  }
}

/**
 * The token's claims, checked with `key`. A token without `kid`, while the JWKS holds several
 * keys its algorithm could use (a rotation under way), is tried against each as jose leaves to
 * its caller: only a failed signature moves on to the next key.
 */
async function payloadOf(
  token: string,
  key: VerificationKey,
  options: JWTVerifyOptions,
): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, key, options)).payload;
  } catch (error) {
    if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error;
    for await (const candidate of error) {
      try {
        return (await jwtVerify(token, candidate, options)).payload;
      } catch (failure) {
        if (!(failure instanceof errors.JWSSignatureVerificationFailed)) throw failure;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

/**
 * The JWT from `?token=` or, failing that, from `Authorization: Bearer <jwt>` (scheme
 * case-insensitive); `null` when neither carries one.
 */
export function tokenFromRequest(request: Request): string | null {
  const fromQuery = new URL(request.url).searchParams.get("token");
  if (fromQuery) return fromQuery;
  const header = request.headers.get("authorization");
  if (header === null) return null;
  const match = /^bearer\s+(.+)$/i.exec(header);
  return match?.[1]?.trim() || null;
}

async function resolveKey(config: JwtKeyConfig): Promise<ResolvedKey> {
  switch (config.kind) {
    case "secret":
      return { key: hs256Key(config.secret), algorithms: ["HS256"] };
    case "public_key":
      return await importPublicKey(config.pem);
    case "jwks": {
      const keys = createJwksKeys(jwksUrl(config.url));
      return {
        key: keys.getKey,
        algorithms: ["RS256", "ES256"],
        held: keys.held,
        refetched: keys.refetched,
      };
    }
  }
}

/**
 * The key type decides the algorithm: WebCrypto only imports an RSA key for RS256 and a P-256
 * key for ES256, so the first import that succeeds names the one algorithm we then accept.
 */
async function importPublicKey(pem: string): Promise<ResolvedKey> {
  const failures: unknown[] = [];
  for (const alg of PEM_ALGORITHMS) {
    let key: PublicKey;
    try {
      key = await importSPKI(pem.trim(), alg);
    } catch (error) {
      failures.push(error);
      continue;
    }
    const bits = "modulusLength" in key.algorithm ? key.algorithm.modulusLength : undefined;
    if (typeof bits === "number" && bits < MIN_RSA_MODULUS_BITS) {
      throw new Error(`JWT public key: RSA keys must be at least ${MIN_RSA_MODULUS_BITS} bits`);
    }
    return { key, algorithms: [alg] };
  }
  throw new Error(
    'JWT public key must be an SPKI PEM ("-----BEGIN PUBLIC KEY-----") of an RSA or EC P-256 key',
    { cause: new AggregateError(failures) },
  );
}

function jwksUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new Error("JWKS URL is not a valid URL", { cause });
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new Error(`JWKS URL must be http(s); got ${parsed.protocol}`);
  }
  return parsed;
}

/**
 * Whether `id` is a user id the rest of the service can take: storable (PostgreSQL text cannot
 * hold a NUL; a lone surrogate has no UTF-8, so no bus subject), and one the admin plane can
 * name to ban or disconnect (it trims what it is given, and takes at most MAX_USER_ID_LENGTH).
 */
function nameable(id: string): boolean {
  return id !== "" && id.length <= MAX_USER_ID_LENGTH && id.trim() === id &&
    !id.includes("\0") && id.isWellFormed();
}

/**
 * Django simplejwt puts a numeric `user_id` in its tokens; only safe integers are accepted so
 * that a rounded number can never name another user. A string that is not `nameable` names no
 * user the service can have: refused here as a bad token, not failing later as an internal
 * error, nor let in beyond moderation's reach.
 */
function userIdOf(payload: JWTPayload, userClaim: string | undefined): string {
  const claim = userClaim ?? (Object.hasOwn(payload, "user_id") ? "user_id" : "sub");
  const value = Object.hasOwn(payload, claim) ? payload[claim] : undefined;
  if (typeof value === "string" && nameable(value)) return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  throw new AuthError("invalid", `token has no usable "${claim}" claim`);
}
