import assert from "node:assert/strict";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { signDevToken } from "./sign.ts";

const SECRET = "test-secret-that-is-at-least-32-bytes-long";

Deno.test("signDevToken() makes an HS256 token with user_id, sub, iat and exp", async () => {
  const token = await signDevToken(SECRET, "17", { ttlSeconds: 120, issuer: "i", audience: "a" });
  assert.equal(decodeProtectedHeader(token).alg, "HS256");
  const claims = decodeJwt(token);
  assert.equal(claims.user_id, "17");
  assert.equal(claims.sub, "17");
  assert.equal(claims.iss, "i");
  assert.equal(claims.aud, "a");
  assert.equal(typeof claims.iat, "number");
  assert.equal(claims.exp, (claims.iat ?? 0) + 120);
});

Deno.test("signDevToken() throws on a secret shorter than 32 bytes", async () => {
  await assert.rejects(signDevToken("short", "1"), /32 bytes/);
});
