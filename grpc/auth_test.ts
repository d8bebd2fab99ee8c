import { Metadata } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { createTokenCheck } from "./auth.ts";

const token = "0123456789abcdef-admin";

function metadata(...values: string[]): Metadata {
  const result = new Metadata();
  for (const value of values) result.add("authorization", value);
  return result;
}

Deno.test("createTokenCheck accepts exactly `Bearer <token>`, in any case of the scheme", () => {
  const authorized = createTokenCheck(token);
  assert.equal(authorized(metadata(`Bearer ${token}`)), true);
  assert.equal(authorized(metadata(`bearer ${token}`)), true);
});

Deno.test("createTokenCheck refuses a missing, wrong, partial, repeated or unschemed token", () => {
  const authorized = createTokenCheck(token);
  for (
    const refused of [
      metadata(),
      metadata("Bearer"),
      metadata("Bearer "),
      metadata(token),
      metadata(`Basic ${token}`),
      metadata(`Bearer ${token.slice(0, -1)}`),
      metadata(`Bearer ${token}x`),
      metadata(`Bearer ${token} extra`),
      metadata(`Bearer ${token}`, `Bearer ${token}`),
    ]
  ) {
    assert.equal(authorized(refused), false, JSON.stringify(refused.getMap()));
  }
});

Deno.test("createTokenCheck refuses to run without a token", () => {
  assert.throws(() => createTokenCheck(""), /GRPC_ADMIN_TOKEN/);
});
