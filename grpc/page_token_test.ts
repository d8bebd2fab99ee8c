import assert from "node:assert/strict";
import { ChatError } from "../chat/errors.ts";
import { createPageTokens } from "./page_token.ts";

const filters = { user_id: "alice" };

function refusal(read: () => unknown): string {
  try {
    read();
  } catch (error) {
    assert.ok(error instanceof ChatError);
    assert.equal(error.code, "invalid_payload");
    assert.equal(error.issues[0]?.path, "page_token");
    return error.issues[0]!.message;
  }
  throw new Error("the token was honoured");
}

Deno.test("a page token gives back its cursor for the same method and filters", () => {
  const tokens = createPageTokens("secret-of-the-admin");
  const cursor = { at: "2026-01-01 10:00:00.123456+00", key: "id-1" };
  const token = tokens.issue("ListChats", filters, cursor);
  assert.match(token, /^p1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  assert.deepEqual(tokens.read("ListChats", { user_id: "alice" }, token), cursor);
  // another instance with the same admin token honours it
  assert.deepEqual(
    createPageTokens("secret-of-the-admin").read("ListChats", filters, token),
    cursor,
  );
});

Deno.test("a page token for another method, other filters or another key is refused", () => {
  const tokens = createPageTokens("secret-of-the-admin");
  const token = tokens.issue("ListChats", filters, 7);
  refusal(() => tokens.read("ListBans", filters, token));
  refusal(() => tokens.read("ListChats", { user_id: "bob" }, token));
  refusal(() => tokens.read("ListChats", {}, token));
  refusal(() => createPageTokens("a-rotated-admin-token").read("ListChats", filters, token));
});

Deno.test("an altered, truncated or made-up page token is refused", () => {
  const tokens = createPageTokens("secret-of-the-admin");
  const token = tokens.issue("ListMessages", filters, 42);
  const [version, payload, mac] = token.split(".") as [string, string, string];
  const forgedPayload = new TextEncoder().encode(JSON.stringify({ e: 9e15, c: 1 }))
    .toBase64({ alphabet: "base64url", omitPadding: true });
  for (
    const forged of [
      "",
      "p1",
      "p1..",
      `${version}.${payload}`,
      `p2.${payload}.${mac}`,
      `${version}.${forgedPayload}.${mac}`,
      `${version}.${payload}.${mac.slice(1)}`,
      `${version}.${payload}.!!!`,
      `${token}.more`,
    ]
  ) {
    refusal(() => tokens.read("ListMessages", filters, forged));
  }
});

Deno.test("a page token whose mac is spelled any other way is refused, though it decodes to the same bytes", () => {
  const tokens = createPageTokens("secret-of-the-admin");
  const token = tokens.issue("ListChats", filters, 42);
  const [version, payload, mac] = token.split(".") as [string, string, string];
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  // 32 bytes are 43 characters, the last carrying 2 bits and 4 a decoder ignores
  const last = alphabet.indexOf(mac.at(-1)!);
  const respelled = `${mac.slice(0, -1)}${alphabet[last ^ 1]}`;
  for (
    const altered of [
      `${version}.${payload}.${respelled}`,
      `${version}.${payload}.${mac}=`,
      `${version}.${payload}.${mac.slice(0, 20)} ${mac.slice(20)}`,
      `${version}.${payload}.${mac}\n`,
    ]
  ) {
    refusal(() => tokens.read("ListChats", filters, altered));
  }
});

Deno.test("a page token goes stale after its time to live", () => {
  let now = 1_000_000;
  const tokens = createPageTokens("secret-of-the-admin", { ttlMs: 60_000, now: () => now });
  const token = tokens.issue("ListChats", filters, 1);
  now += 59_999;
  assert.equal(tokens.read("ListChats", filters, token), 1);
  now += 1;
  assert.match(refusal(() => tokens.read("ListChats", filters, token)), /expired/);
});
