import {
  base64url,
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  type FetchImplementation,
  type FlattenedJWSInput,
  type JWTVerifyGetKey,
} from "jose";
import { ChatError } from "../chat/errors.ts";
import { errorFields, logger } from "../observability/log.ts";

/** After a failed fetch, the last key set is used without asking the endpoint again this long. */
const RETRY_AFTER_FAILURE_MS = 10_000;
/**
 * A key set's body is read no further: real ones are a few KiB, and jose reads a body whole
 * within its 5 s timeout, gigabytes of it from an endpoint that streams without end.
 */
const MAX_JWKS_BYTES = 1024 * 1024;

type LocalKeys = ReturnType<typeof createLocalJWKSet>;
type JwsPayload = FlattenedJWSInput["payload"] | undefined;

/** A remote key set: what `jwtVerify` asks for keys, and whether there are any to ask. */
export interface JwksKeys {
  /**
   * The key for a token's header, for `jwtVerify`. Rejects with ChatError `unavailable` when
   * the endpoint cannot be reached and no set was ever fetched, or when a token issued since
   * the set was fetched names a key not in it while the set may not be fetched again yet (30 s
   * after a fetch); and with jose's `JWKSNoMatchingKey` (or another jose error) for a key not
   * in the set.
   */
  getKey: JWTVerifyGetKey;
  /**
   * For a token without `kid` whose signature no key of the set verified: whether a newer set is
   * held now to check it with (fetched unless the set was under 30 s ago). Rejects with
   * ChatError `unavailable`, as `getKey` does, for a token issued since a fetch under 30 s ago.
   */
  refetched(token: string, cause: unknown): Promise<boolean>;
  /**
   * Whether a key set is held, so that tokens can be checked. While none is, it fetches one
   * first (not again within 10 s of a failed fetch, however often it is asked). Once a set is
   * held this is true for good without asking the endpoint: the set outlives an outage.
   * Never rejects.
   */
  held(): Promise<boolean>;
}

/**
 * The keys of the JWKS at `url`. jose fetches and ages the set (refetched once older than
 * 10 minutes; an unknown `kid` refetches it at most every 30 s), but on its own it refuses
 * every token once the set is stale and the endpoint is down. Here the last set fetched
 * successfully keeps serving while the endpoint cannot be reached (asked again at most every
 * 10 s meanwhile); keys it does not hold are still refused, and a rotated set is taken as soon
 * as the endpoint answers. A stale set is refetched while tokens go on being checked with it,
 * so a slow or hanging endpoint delays no token of a key held; a token of a key not held waits
 * for the refetch. Nothing is fetched until `getKey` or `held` is first called.
 */
export function createJwksKeys(url: URL): JwksKeys {
  const remote = createRemoteJWKSet(url, { [customFetch]: fetchReleasingRefusals });
  const log = logger("auth");
  let local: LocalKeys | undefined;
  let failedAt = Number.NEGATIVE_INFINITY;
  let lastFailure: unknown;
  let refreshing: Promise<void> | undefined;
  /** When the set held was fetched, in ms since the epoch. */
  let fetchedAt = Number.NEGATIVE_INFINITY;

  /** One fetch at a time; callers that come meanwhile wait for its set. */
  function refresh(): Promise<void> {
    refreshing ??= (async () => {
      if (Date.now() - failedAt < RETRY_AFTER_FAILURE_MS) return;
      try {
        await remote.reload();
      } catch (cause) {
        failedAt = Date.now();
        lastFailure = cause;
        log.warn(
          local
            ? "JWKS endpoint unreachable; verifying with the last key set fetched"
            : "JWKS endpoint unreachable and no key set fetched yet; tokens cannot be checked",
          errorFields(cause),
        );
        return;
      }
      const jwks = remote.jwks();
      // a set without keys checks no token: it is no better than none (sockets would close
      // 4401, and clients throw their tokens away), so the last set with keys is kept
      if (jwks && jwks.keys.length > 0) {
        local = createLocalJWKSet(jwks);
        fetchedAt = Date.now();
        return;
      }
      failedAt = Date.now();
      lastFailure = new Error("the JWKS endpoint served no keys");
      log.warn("JWKS endpoint served no keys; keeping the last key set fetched");
    })().finally(() => (refreshing = undefined));
    return refreshing;
  }

  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (local === undefined) await refresh();
    // a stale set held is refetched meanwhile, not waited for: an endpoint that hangs would
    // hold every token for jose's 5 s timeout, once every 10 s while it is down
    else if (!remote.fresh) void refresh();
    if (local === undefined) {
      throw new ChatError("unavailable", "the JWKS endpoint cannot be reached; retry", {
        cause: lastFailure,
      });
    }
    try {
      return await local(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      if (!(await refetchedFor(token?.payload, error))) throw error;
      return await local(header, token);
    }
  };

  /**
   * After a token found no key in the set that verifies it: whether a newer set is held now to
   * try it with. Perhaps a key rotated in since the last fetch: the set is fetched again, as
   * jose would, unless it was under 30 s ago. Then a token issued since may be of a key
   * published since (an issuer that signs with a new key at once): refused, its valid token
   * would be a 4401 at connect, which stops a client for good; and a token naming a random key
   * every 30 s would keep the set in that window, each rotation meeting it. Rejected with
   * ChatError unavailable, it is checked again once the set may be fetched. A token issued
   * before the fetch had its key there to be served: false, refused at once, so that a client
   * of the wrong issuer learns so.
   */
  async function refetchedFor(payload: JwsPayload, cause: unknown): Promise<boolean> {
    if (!remote.coolingDown) {
      const held = local;
      await refresh();
      return local !== held;
    }
    if (issuedSince(payload, fetchedAt)) {
      throw new ChatError("unavailable", "the token's key is not in the key set yet; retry", {
        cause,
      });
    }
    return false;
  }

  return {
    getKey,
    refetched: (token, cause) => refetchedFor(token.split(".")[1], cause),
    async held() {
      if (local === undefined) await refresh();
      return local !== undefined;
    },
  };
}

/**
 * Whether a token's `iat`, in its base64url `payload`, is at or after `at` (ms since the epoch),
 * in the second `at` falls in or later. Its signature is not checked: this only chooses how a
 * token is refused.
 */
function issuedSince(payload: JwsPayload, at: number): boolean {
  // a JWT's payload is always base64url text; jose's type also allows raw bytes
  if (typeof payload !== "string") return false;
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload)));
  } catch {
    return false;
  }
  const iat = typeof claims === "object" && claims !== null && "iat" in claims
    ? claims.iat
    : undefined;
  return typeof iat === "number" && iat >= Math.floor(at / 1000);
}

/**
 * fetch for jose, which refuses an answer other than 200 without reading its body: left
 * unread, the body (and its connection) stays open until garbage collection, once per failed
 * fetch while the endpoint is down. The body of a 200 is read here, at most MAX_JWKS_BYTES.
 */
const fetchReleasingRefusals: FetchImplementation = async (url, options) => {
  const response = await fetch(url, options);
  if (response.status !== 200) {
    await response.body?.cancel();
    return response;
  }
  return new Response(await boundedBody(response), { headers: response.headers });
};

/** The body of `response`; throws once it passes MAX_JWKS_BYTES, and stops reading it. */
async function boundedBody(response: Response): Promise<Blob> {
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let length = 0;
  for await (const chunk of response.body ?? []) {
    length += chunk.byteLength;
    // leaving the loop cancels the body: the rest is never fetched
    if (length > MAX_JWKS_BYTES) {
      throw new Error(`the JWKS endpoint answered with more than ${MAX_JWKS_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return new Blob(chunks);
}
