import assert from "node:assert/strict";
import { errors, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { ChatError } from "../chat/errors.ts";
import { configureLogging } from "../observability/log.ts";
import { clockAhead } from "../tests/support/clock.ts";
import { AuthError, createTokenVerifier, type TokenVerifier } from "./verifier.ts";

/** Past jose's default cache age (10 minutes), after which it refetches the key set. */
const PAST_CACHE_AGE_MS = 11 * 60_000;
/** Past the pause between two tries of an endpoint that failed. */
const PAST_RETRY_MS = 60_000;

interface SigningKey {
  jwk: JWK;
  /** A token of `userId` valid for an hour; issued now (`iat`) with `issued`. */
  token(userId: string, options?: { issued?: boolean }): Promise<string>;
}

/** An RS256 key; without `kid`, neither its JWK nor its tokens name one. */
async function signingKey(kid?: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const named = kid === undefined ? {} : { kid };
  return {
    jwk: { ...(await exportJWK(publicKey)), ...named, alg: "RS256", use: "sig" },
    token: (userId, options = {}) => {
      const token = new SignJWT({ user_id: userId, exp: Math.floor(Date.now() / 1000) + 3600 })
        .setProtectedHeader({ alg: "RS256", ...named });
      return (options.issued ? token.setIssuedAt() : token).sign(privateKey);
    },
  };
}

/** A JWKS endpoint on 127.0.0.1 serving `keys`; `port` 0 takes a free one. */
function serveKeys(keys: JWK[], port = 0): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, () => Response.json({ keys }));
}

/** A JWKS endpoint on 127.0.0.1 serving whatever `keys` holds when asked; counts the asks. */
function changingKeys(keys: JWK[]) {
  const endpoint = { keys, fetches: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    endpoint.fetches++;
    return Response.json({ keys: endpoint.keys });
  });
  return Object.assign(endpoint, {
    port: server.addr.port,
    [Symbol.asyncDispose]: () => server.shutdown(),
  });
}

function jwksVerifier(port: number): Promise<TokenVerifier> {
  return createTokenVerifier({
    key: { kind: "jwks", url: `http://127.0.0.1:${port}/.well-known/jwks.json` },
  });
}

async function userOf(verifier: TokenVerifier, key: SigningKey): Promise<string> {
  return (await verifier.verify(await key.token("alice"))).userId;
}

async function assertNoMatchingKey(verifier: TokenVerifier, key: SigningKey): Promise<void> {
  await assert.rejects(verifier.verify(await key.token("alice")), (error: unknown) => {
    assert.ok(error instanceof AuthError, `expected AuthError, got ${error}`);
    assert.equal(error.code, "invalid");
    assert.ok(error.cause instanceof errors.JWKSNoMatchingKey, `cause: ${error.cause}`);
    return true;
  });
}

async function assertUnavailable(verifier: TokenVerifier, key: SigningKey): Promise<void> {
  await assert.rejects(verifier.verify(await key.token("alice")), (error: unknown) => {
    assert.ok(error instanceof ChatError, `expected ChatError, got ${error}`);
    assert.equal(error.code, "unavailable");
    assert.ok(error.retryable);
    return true;
  });
}

Deno.test("a JWKS verifier keeps the last key set while the endpoint is down past the cache age, and refuses keys not in it", async () => {
  const known = await signingKey("k1");
  const server = serveKeys([known.jwk]);
  const verifier = await jwksVerifier(server.addr.port);
  assert.equal(await userOf(verifier, known), "alice");
  await server.shutdown();

  using _later = clockAhead(PAST_CACHE_AGE_MS);
  assert.equal(await userOf(verifier, known), "alice");
  await assertNoMatchingKey(verifier, await signingKey("k2"));
  using _evenLater = clockAhead(PAST_RETRY_MS);
  assert.equal(await userOf(verifier, known), "alice");
});

Deno.test("a JWKS verifier takes the rotated key set once the endpoint answers again", async () => {
  const [before, after] = [await signingKey("k1"), await signingKey("k2")];
  const server = serveKeys([before.jwk]);
  const { port } = server.addr;
  const verifier = await jwksVerifier(port);
  assert.equal(await userOf(verifier, before), "alice");
  await server.shutdown();
  using _later = clockAhead(PAST_CACHE_AGE_MS);
  assert.equal(await userOf(verifier, before), "alice");
  // that token's stale set is refetched in the background, from the closed port: a token of a
  // key not held joins a refetch under way, and one begun before the endpoint came back fails
  await new Promise((resolve) => setTimeout(resolve, 500));

  await using _back = serveKeys([after.jwk], port);
  using _retried = clockAhead(PAST_RETRY_MS);
  assert.equal(await userOf(verifier, after), "alice");
  await assertNoMatchingKey(verifier, before);
});

Deno.test("a JWKS verifier that never fetched a key set rejects with ChatError unavailable while the endpoint is down, not as a bad token", async () => {
  const key = await signingKey("k1");
  const stopped = serveKeys([]);
  const { port } = stopped.addr;
  await stopped.shutdown();
  const verifier = await jwksVerifier(port);
  await assertUnavailable(verifier, key);

  await using failing = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("down for maintenance", { status: 503 }),
  );
  await assertUnavailable(await jwksVerifier(failing.addr.port), key);

  await using _back = serveKeys([key.jwk], port);
  using _retried = clockAhead(PAST_RETRY_MS);
  assert.equal(await userOf(verifier, key), "alice");
});

Deno.test("a JWKS verifier can verify only once it holds a key set: it asks a failing endpoint at most every 10 s meanwhile, and a held set outlives the endpoint", async () => {
  const key = await signingKey("k1");
  let up = false;
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    requests++;
    return up ? Response.json({ keys: [key.jwk] }) : new Response("down", { status: 503 });
  });
  const verifier = await jwksVerifier(server.addr.port);
  assert.deepEqual(
    await Promise.all([verifier.canVerify(), verifier.canVerify()]),
    [false, false],
  );
  assert.equal(await verifier.canVerify(), false);
  assert.equal(requests, 1, "asked again within 10 s of the failure");

  up = true;
  assert.equal(await verifier.canVerify(), false, "still within 10 s of the failure");
  assert.equal(requests, 1);
  using _retried = clockAhead(PAST_RETRY_MS);
  assert.equal(await verifier.canVerify(), true);
  assert.equal(requests, 2);

  await server.shutdown();
  using _later = clockAhead(PAST_CACHE_AGE_MS);
  assert.equal(await verifier.canVerify(), true, "the held set still verifies");
  assert.equal(await userOf(verifier, key), "alice");
  assert.equal(requests, 2);
});

Deno.test("a JWKS endpoint that serves no keys leaves the verifier unable to verify, not refusing every token as bad", async () => {
  const key = await signingKey("k1");
  let keys: JWK[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => Response.json({ keys }),
  );
  try {
    const verifier = await jwksVerifier(server.addr.port);
    assert.equal(await verifier.canVerify(), false);
    await assertUnavailable(verifier, key);
    keys = [key.jwk];
    using _retried = clockAhead(PAST_CACHE_AGE_MS);
    assert.equal(await verifier.canVerify(), true);
    assert.equal(await userOf(verifier, key), "alice");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a JWKS verifier holding a key set checks tokens with it at once while a stale set's refetch hangs", async () => {
  const [key, other] = [await signingKey("k1"), await signingKey("k2")];
  let hang = false;
  const answer = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    if (!hang) return Response.json({ keys: [key.jwk] });
    await answer.promise;
    return new Response("down", { status: 503 });
  });
  try {
    const verifier = await jwksVerifier(server.addr.port);
    assert.equal(await userOf(verifier, key), "alice");

    // an endpoint that takes connections and never answers: jose waits 5 s for it
    hang = true;
    using _later = clockAhead(PAST_CACHE_AGE_MS);
    const started = performance.now();
    assert.equal(await userOf(verifier, key), "alice");
    const tookMs = performance.now() - started;
    answer.resolve();
    // a key not in the set waits for the refetch under way, then is refused
    await assertNoMatchingKey(verifier, other);
    assert.ok(tookMs < 1000, `a token of a held key waited ${Math.round(tookMs)} ms`);
  } finally {
    answer.resolve();
    await server.shutdown();
  }
});

Deno.test("the warning of a JWKS endpoint that cannot be reached masks the key its URL carries", async () => {
  const stopped = serveKeys([]);
  const { port } = stopped.addr;
  await stopped.shutdown();
  let text = "";
  const decoder = new TextDecoder();
  await using _logging = await configureLogging("warning", {
    write: (bytes) => text += decoder.decode(bytes),
  });
  const verifier = await createTokenVerifier({
    key: { kind: "jwks", url: `http://127.0.0.1:${port}/jwks.json?api_key=s3cr3t-jwks-key` },
  });
  assert.equal(await verifier.canVerify(), false);
  assert.match(text, /JWKS endpoint unreachable/);
  // the fetch failure quotes the URL it asked (Deno: "error sending request for url (...)")
  assert.match(text, new RegExp(`127\\.0\\.0\\.1:${port}/jwks\\.json`));
  assert.doesNotMatch(text, /s3cr3t-jwks-key/);
});

Deno.test("a JWKS endpoint answering with a huge body is refused after its first MiB, not read whole into memory", async () => {
  const key = await signingKey("k1");
  const chunk = new TextEncoder().encode(" ".repeat(1 << 20));
  const chunks = 64;
  let sent = 0;
  // a valid key set behind 64 MiB of blanks (JSON allows them): read whole, it would be taken
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    let left = chunks;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (left-- === 0) {
          controller.enqueue(new TextEncoder().encode(JSON.stringify({ keys: [key.jwk] })));
          return controller.close();
        }
        sent += chunk.byteLength;
        controller.enqueue(chunk);
      },
    }, { highWaterMark: 0 });
    return new Response(body, { headers: { "content-type": "application/json" } });
  });
  try {
    const verifier = await jwksVerifier(server.addr.port);
    const held = await verifier.canVerify();
    assert.ok(sent < 8 * chunk.byteLength, `the verifier read ${sent >> 20} MiB of the key set`);
    assert.equal(held, false);
    await assertUnavailable(verifier, key);
  } finally {
    await server.shutdown();
  }
});

/**
 * A verifier that fetched the set of `held` and checked a token with it, whose endpoint then
 * serves `published` beside it: the issuer signs with it at once, within jose's 30 s between
 * fetches. A token of it issued now (`fresh`) is told to retry: a 4401 at connect would stop
 * the client for good.
 */
async function publishedAfterFetch(held: SigningKey, published: SigningKey) {
  const endpoint = changingKeys([held.jwk]);
  const verifier = await jwksVerifier(endpoint.port);
  assert.equal(await userOf(verifier, held), "alice");
  endpoint.keys = [held.jwk, published.jwk];
  const fresh = await published.token("alice", { issued: true });
  await assert.rejects(verifier.verify(fresh), ChatError);
  return { endpoint, verifier, fresh };
}

Deno.test("a token issued since a fetch, of a key not in the set, is told to retry until the set may be fetched again; one issued before is refused", async () => {
  const [key, rotated] = [await signingKey("k1"), await signingKey("k2")];
  const strangers = await Promise.all(["x1", "x2", "x3"].map(signingKey));
  const { endpoint, verifier, fresh } = await publishedAfterFetch(key, rotated);
  await using _endpoint = endpoint;
  // a flood of unknown keys fetches nothing more, and a token that names no time of issue
  // (nor any issued before the fetch, whose key was there to be served) is refused at once
  for (const stranger of strangers) {
    await assert.rejects(
      verifier.verify(await stranger.token("alice", { issued: true })),
      ChatError,
    );
    await assertNoMatchingKey(verifier, stranger);
  }
  assert.equal(endpoint.fetches, 1);

  // once the set may be fetched again, tokens naming unknown keys at once share one fetch
  using _later = clockAhead(31_000);
  const tokens = await Promise.all(
    strangers.map((stranger) => stranger.token("alice", { issued: true })),
  );
  const refusals = await Promise.allSettled(tokens.map((token) => verifier.verify(token)));
  assert.deepEqual(
    refusals.map((refusal) => refusal.status === "rejected" && refusal.reason.code),
    ["invalid", "invalid", "invalid"],
  );
  assert.equal(endpoint.fetches, 2);
  assert.equal((await verifier.verify(fresh)).userId, "alice");
});

Deno.test("a token without kid of a key published since the fetch is told to retry, or waits for the refetch, not refused as bad", async () => {
  const [old, next, third] = [await signingKey(), await signingKey(), await signingKey()];
  // an issuer that names no key: the new key's signature fails on the old one
  const { endpoint, verifier, fresh } = await publishedAfterFetch(old, next);
  await using _endpoint = endpoint;
  // one that names no time of issue, like a forgery, is refused at once, fetching nothing
  await assert.rejects(verifier.verify(await next.token("alice")), (error: unknown) => {
    assert.ok(error instanceof AuthError, `expected AuthError, got ${error}`);
    assert.ok(error.cause instanceof errors.JWSSignatureVerificationFailed, `${error.cause}`);
    return true;
  });
  assert.equal(endpoint.fetches, 1);

  using _later = clockAhead(31_000);
  assert.equal((await verifier.verify(fresh)).userId, "alice");
  assert.equal(endpoint.fetches, 2);
  // past the 30 s, any token whose signature fails has the set fetched again first
  endpoint.keys = [next.jwk, third.jwk];
  using _evenLater = clockAhead(31_000);
  assert.equal(await userOf(verifier, third), "alice");
  assert.equal(endpoint.fetches, 3);
});
