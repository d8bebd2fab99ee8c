import assert from "node:assert/strict";
import {
  base64url,
  type CryptoKey,
  errors,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWTPayload,
  SignJWT,
} from "jose";
import { signDevToken } from "./sign.ts";
import {
  AuthError,
  type AuthErrorCode,
  createTokenVerifier,
  tokenFromRequest,
  type TokenVerifier,
  type VerifierOptions,
} from "./verifier.ts";

const SECRET = "test-secret-that-is-at-least-32-bytes-long";
const rsa = await generateKeyPair("RS256");
const ec = await generateKeyPair("ES256");
const rsaPem = await exportSPKI(rsa.publicKey);
const ecPem = await exportSPKI(ec.publicKey);

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

async function sign(
  payload: JWTPayload,
  key: CryptoKey | Uint8Array,
  header: { alg: string; kid?: string } = { alg: "HS256" },
): Promise<string> {
  return await new SignJWT(payload).setProtectedHeader(header).sign(key);
}

function hsSign(payload: JWTPayload, secret = SECRET): Promise<string> {
  return sign(payload, new TextEncoder().encode(secret));
}

function hsVerifier(options: Omit<VerifierOptions, "key"> = {}): Promise<TokenVerifier> {
  return createTokenVerifier({ key: { kind: "secret", secret: SECRET }, ...options });
}

async function assertRefused(promise: Promise<unknown>, code: AuthErrorCode): Promise<AuthError> {
  let refused: AuthError | undefined;
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof AuthError, `expected AuthError, got ${error}`);
    assert.equal(error.code, code);
    refused = error;
    return true;
  });
  assert.ok(refused);
  return refused;
}

Deno.test("verify() accepts a valid HS256 token and turns a numeric user_id into a string", async () => {
  const exp = nowSeconds() + 600;
  const verifier = await hsVerifier();
  const principal = await verifier.verify(await hsSign({ user_id: 42, sub: "ignored", exp }));
  // valid until the default clock tolerance of 5 s has run out too
  assert.deepEqual(principal, { userId: "42", expiresAt: (exp + 5) * 1000 });
});

Deno.test("verify() falls back to sub when the token has no user_id", async () => {
  const verifier = await hsVerifier();
  const principal = await verifier.verify(await hsSign({ sub: "u-7", exp: nowSeconds() + 60 }));
  assert.equal(principal.userId, "u-7");
});

Deno.test("verify() reads the configured userClaim instead of user_id or sub", async () => {
  const verifier = await hsVerifier({ userClaim: "uid" });
  const token = await hsSign({ uid: "custom", user_id: "1", sub: "2", exp: nowSeconds() + 60 });
  assert.equal((await verifier.verify(token)).userId, "custom");
});

Deno.test("verify() accepts a token signed by signDevToken() with issuer and audience", async () => {
  const verifier = await hsVerifier({ issuer: "chat-auth", audience: "chat" });
  const token = await signDevToken(SECRET, "99", { issuer: "chat-auth", audience: "chat" });
  assert.equal((await verifier.verify(token)).userId, "99");
});

Deno.test("verify() accepts a token expired by less than the clock tolerance", async () => {
  const verifier = await hsVerifier({ clockToleranceSeconds: 30 });
  const exp = nowSeconds() - 10;
  const principal = await verifier.verify(await hsSign({ user_id: "1", exp }));
  assert.deepEqual(principal, { userId: "1", expiresAt: (exp + 30) * 1000 });
});

Deno.test("verify() refuses a missing, empty, unsafe or non-scalar user id as invalid", async () => {
  const verifier = await hsVerifier();
  const exp = nowSeconds() + 60;
  for (
    const claims of [
      { exp },
      { user_id: "", exp },
      { user_id: null, sub: "fallback-not-used", exp },
      { user_id: { id: 1 }, exp },
      { user_id: 1.5, exp },
      { user_id: 2 ** 53, exp },
    ]
  ) {
    await assertRefused(verifier.verify(await hsSign(claims)), "invalid");
  }
});

Deno.test("verify() refuses a user id no one can have: with a NUL or a lone surrogate", async () => {
  const verifier = await hsVerifier();
  const exp = nowSeconds() + 60;
  for (const userId of ["a\u0000b", "\ud800", "x\udc00y"]) {
    await assertRefused(verifier.verify(await hsSign({ user_id: userId, exp })), "invalid");
    await assertRefused(verifier.verify(await hsSign({ sub: userId, exp })), "invalid");
  }
});

Deno.test("verify() takes only user ids the admin plane can name: up to 256 characters, not padded with blanks", async () => {
  const verifier = await hsVerifier();
  const exp = nowSeconds() + 60;
  const longest = "u".repeat(256);
  assert.equal((await verifier.verify(await hsSign({ user_id: longest, exp }))).userId, longest);
  // the admin plane trims ids, so " bob" could never be banned; a longer one never named at all
  for (const userId of [" bob", "bob\t", "u".repeat(257)]) {
    await assertRefused(verifier.verify(await hsSign({ user_id: userId, exp })), "invalid");
  }
});

Deno.test("verify() refuses a token whose token_type is not access, such as a simplejwt refresh token", async () => {
  const verifier = await hsVerifier();
  const exp = nowSeconds() + 60;
  for (const tokenType of ["refresh", "sliding", "", null, 1, ["access"]]) {
    const token = await hsSign({ user_id: "1", token_type: tokenType, exp });
    await assertRefused(verifier.verify(token), "invalid");
  }
});

Deno.test("verify() accepts an access token_type and a token with no token_type", async () => {
  const verifier = await hsVerifier();
  const exp = nowSeconds() + 60;
  const access = await hsSign({ user_id: "1", token_type: "access", exp });
  assert.equal((await verifier.verify(access)).userId, "1");
  assert.equal((await verifier.verify(await hsSign({ user_id: "2", exp }))).userId, "2");
});

Deno.test("verify() refuses an empty token as missing", async () => {
  const verifier = await hsVerifier();
  await assertRefused(verifier.verify(""), "missing");
});

Deno.test("verify() refuses an unsigned alg none token", async () => {
  const verifier = await hsVerifier();
  const encode = (part: object) => base64url.encode(JSON.stringify(part));
  const token = `${encode({ alg: "none", typ: "JWT" })}.${
    encode({ user_id: "1", exp: nowSeconds() + 60 })
  }.`;
  const error = await assertRefused(verifier.verify(token), "invalid");
  assert.ok(error.cause instanceof errors.JOSEError);
});

Deno.test("verify() refuses a token signed with another secret and chains the jose error", async () => {
  const verifier = await hsVerifier();
  const token = await hsSign(
    { user_id: "1", exp: nowSeconds() + 60 },
    "another-secret-that-is-also-32-bytes-long",
  );
  const error = await assertRefused(verifier.verify(token), "invalid");
  assert.ok(error.cause instanceof errors.JWSSignatureVerificationFailed);
});

Deno.test("verify() refuses an expired token with code expired", async () => {
  const verifier = await hsVerifier();
  const token = await hsSign({ user_id: "1", exp: nowSeconds() - 60 });
  const error = await assertRefused(verifier.verify(token), "expired");
  assert.ok(error.cause instanceof errors.JWTExpired);
});

Deno.test("verify() refuses a token without exp", async () => {
  const verifier = await hsVerifier();
  await assertRefused(verifier.verify(await hsSign({ user_id: "1" })), "invalid");
});

Deno.test("verify() refuses a token whose nbf is in the future", async () => {
  const verifier = await hsVerifier();
  const token = await hsSign({ user_id: "1", nbf: nowSeconds() + 3600, exp: nowSeconds() + 7200 });
  await assertRefused(verifier.verify(token), "invalid");
});

Deno.test("verify() refuses a wrong or missing issuer when one is configured", async () => {
  const verifier = await hsVerifier({ issuer: "chat-auth" });
  const exp = nowSeconds() + 60;
  await assertRefused(
    verifier.verify(await hsSign({ user_id: "1", iss: "other", exp })),
    "invalid",
  );
  await assertRefused(verifier.verify(await hsSign({ user_id: "1", exp })), "invalid");
});

Deno.test("verify() refuses a wrong or missing audience when one is configured", async () => {
  const verifier = await hsVerifier({ audience: "chat" });
  const exp = nowSeconds() + 60;
  await assertRefused(
    verifier.verify(await hsSign({ user_id: "1", aud: "admin", exp })),
    "invalid",
  );
  await assertRefused(verifier.verify(await hsSign({ user_id: "1", exp })), "invalid");
});

Deno.test("verify() refuses a token longer than maxTokenLength before parsing it", async () => {
  const verifier = await hsVerifier();
  const huge = await hsSign({ user_id: "1", exp: nowSeconds() + 60, pad: "x".repeat(9000) });
  const error = await assertRefused(verifier.verify(huge), "invalid");
  assert.equal(error.cause, undefined);

  const small = await hsVerifier({ maxTokenLength: 20 });
  await assertRefused(small.verify(await signDevToken(SECRET, "1")), "invalid");
});

Deno.test("verify() refuses a garbage string as invalid", async () => {
  const verifier = await hsVerifier();
  for (const garbage of ["not-a-jwt", "a.b.c", "....", "eyJ.eyJ.sig"]) {
    await assertRefused(verifier.verify(garbage), "invalid");
  }
});

Deno.test("an RS256 verifier refuses a token HMAC-signed with its own public key PEM", async () => {
  const verifier = await createTokenVerifier({ key: { kind: "public_key", pem: rsaPem } });
  const forged = await hsSign({ user_id: "1", exp: nowSeconds() + 60 }, rsaPem);
  const error = await assertRefused(verifier.verify(forged), "invalid");
  assert.ok(error.cause instanceof errors.JOSEAlgNotAllowed);
});

Deno.test("a public key verifier accepts RS256 for an RSA PEM and ES256 for a P-256 PEM", async () => {
  const claims = { user_id: "5", exp: nowSeconds() + 60 };
  const rsaVerifier = await createTokenVerifier({ key: { kind: "public_key", pem: rsaPem } });
  const ecVerifier = await createTokenVerifier({ key: { kind: "public_key", pem: ecPem } });
  const rsToken = await sign(claims, rsa.privateKey, { alg: "RS256" });
  const esToken = await sign(claims, ec.privateKey, { alg: "ES256" });
  assert.equal((await rsaVerifier.verify(rsToken)).userId, "5");
  assert.equal((await ecVerifier.verify(esToken)).userId, "5");
});

Deno.test("a secret or a PEM verifier can always verify, with nothing to fetch", async () => {
  assert.equal(await (await hsVerifier()).canVerify(), true);
  const pemVerifier = await createTokenVerifier({ key: { kind: "public_key", pem: ecPem } });
  assert.equal(await pemVerifier.canVerify(), true);
});

Deno.test("a public key verifier refuses the other asymmetric algorithm and HS256", async () => {
  const claims = { user_id: "5", exp: nowSeconds() + 60 };
  const rsaVerifier = await createTokenVerifier({ key: { kind: "public_key", pem: rsaPem } });
  const ecVerifier = await createTokenVerifier({ key: { kind: "public_key", pem: ecPem } });
  const rsToken = await sign(claims, rsa.privateKey, { alg: "RS256" });
  const esToken = await sign(claims, ec.privateKey, { alg: "ES256" });
  await assertRefused(ecVerifier.verify(rsToken), "invalid");
  await assertRefused(rsaVerifier.verify(esToken), "invalid");
  await assertRefused(rsaVerifier.verify(await hsSign(claims)), "invalid");
});

/** A verifier of a JWKS served on 127.0.0.1 with the public `keys`; disposing stops the server. */
async function servedJwks(keys: { key: CryptoKey; kid: string; alg: string }[]) {
  const jwks = {
    keys: await Promise.all(
      keys.map(async ({ key, kid, alg }) => ({ ...await exportJWK(key), kid, alg, use: "sig" })),
    ),
  };
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    () => Response.json(jwks),
  );
  const url = `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`;
  return {
    verifier: await createTokenVerifier({ key: { kind: "jwks", url } }),
    [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
  };
}

Deno.test("a JWKS verifier accepts RS256 and ES256 tokens whose key is in the served set", async () => {
  await using served = await servedJwks([
    { key: rsa.publicKey, kid: "rsa-1", alg: "RS256" },
    { key: ec.publicKey, kid: "ec-1", alg: "ES256" },
  ]);
  const { verifier } = served;
  const claims = { user_id: "8", exp: nowSeconds() + 60 };

  const rsToken = await sign(claims, rsa.privateKey, { alg: "RS256", kid: "rsa-1" });
  const esToken = await sign(claims, ec.privateKey, { alg: "ES256", kid: "ec-1" });
  assert.equal((await verifier.verify(rsToken)).userId, "8");
  assert.equal((await verifier.verify(esToken)).userId, "8");

  const stranger = await generateKeyPair("RS256");
  const strangerToken = await sign(claims, stranger.privateKey, { alg: "RS256", kid: "rsa-2" });
  const error = await assertRefused(verifier.verify(strangerToken), "invalid");
  assert.ok(error.cause instanceof errors.JWKSNoMatchingKey);
  await assertRefused(verifier.verify(await hsSign(claims)), "invalid");
});

Deno.test("a JWKS verifier holding several keys of a token's type checks a token without kid against each", async () => {
  // a rotation: the old key and the new one are both served, and the issuer names neither
  const rotated = await generateKeyPair("RS256");
  await using served = await servedJwks([
    { key: rsa.publicKey, kid: "old", alg: "RS256" },
    { key: rotated.publicKey, kid: "new", alg: "RS256" },
  ]);
  const { verifier } = served;
  const claims = { user_id: "8", exp: nowSeconds() + 60 };

  assert.equal(
    (await verifier.verify(await sign(claims, rsa.privateKey, { alg: "RS256" }))).userId,
    "8",
  );
  assert.equal(
    (await verifier.verify(await sign(claims, rotated.privateKey, { alg: "RS256" }))).userId,
    "8",
  );
  // the key that signed it decides: expired, not a signature that failed on the other key
  const expired = await sign({ ...claims, exp: nowSeconds() - 60 }, rotated.privateKey, {
    alg: "RS256",
  });
  await assertRefused(verifier.verify(expired), "expired");
  const stranger = await generateKeyPair("RS256");
  const forged = await sign(claims, stranger.privateKey, { alg: "RS256" });
  const error = await assertRefused(verifier.verify(forged), "invalid");
  assert.ok(error.cause instanceof errors.JWSSignatureVerificationFailed, `cause: ${error.cause}`);
});

Deno.test("createTokenVerifier() throws on an HS256 secret shorter than 32 bytes", async () => {
  await assert.rejects(
    createTokenVerifier({ key: { kind: "secret", secret: "too-short" } }),
    (error: unknown) =>
      error instanceof Error && !(error instanceof AuthError) && /32 bytes/.test(error.message),
  );
});

Deno.test("createTokenVerifier() throws on a PEM that is neither RSA nor EC P-256", async () => {
  const p384 = await generateKeyPair("ES384");
  for (const pem of [await exportSPKI(p384.publicKey), "not a pem"]) {
    await assert.rejects(
      createTokenVerifier({ key: { kind: "public_key", pem } }),
      /RSA or EC P-256/,
    );
  }
});

Deno.test("createTokenVerifier() throws on a JWKS URL that is not http(s)", async () => {
  await assert.rejects(
    createTokenVerifier({ key: { kind: "jwks", url: "file:///etc/jwks.json" } }),
    /http\(s\)/,
  );
  await assert.rejects(
    createTokenVerifier({ key: { kind: "jwks", url: "not a url" } }),
    /not a valid URL/,
  );
});

Deno.test("tokenFromRequest() reads the token query parameter", () => {
  const request = new Request("http://chat.test/v1/ws/chats/?token=abc.def.ghi");
  assert.equal(tokenFromRequest(request), "abc.def.ghi");
});

Deno.test("tokenFromRequest() reads a Bearer header with any scheme case", () => {
  for (const scheme of ["Bearer", "bearer", "BEARER"]) {
    const request = new Request("http://chat.test/v1/ws/chats/", {
      headers: { authorization: `${scheme} abc.def.ghi` },
    });
    assert.equal(tokenFromRequest(request), "abc.def.ghi");
  }
});

Deno.test("tokenFromRequest() prefers the query parameter over the header", () => {
  const request = new Request("http://chat.test/v1/ws/chats/?token=from-query", {
    headers: { authorization: "Bearer from-header" },
  });
  assert.equal(tokenFromRequest(request), "from-query");
});

Deno.test("tokenFromRequest() returns null when neither query nor Bearer header has a token", () => {
  const requests = [
    new Request("http://chat.test/v1/ws/chats/"),
    new Request("http://chat.test/v1/ws/chats/?token="),
    new Request("http://chat.test/", { headers: { authorization: "Basic dXNlcjpwYXNz" } }),
    new Request("http://chat.test/", { headers: { authorization: "Bearer " } }),
  ];
  for (const request of requests) assert.equal(tokenFromRequest(request), null);
});
