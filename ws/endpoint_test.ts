import assert from "node:assert/strict";
import { endpointOf } from "./endpoint.ts";

Deno.test("endpointOf() names the chat of /v1/ws/chat/{id}, decoded and lower-cased, with or without a trailing slash", () => {
  const id = "0B1C2D3E-0000-4000-8000-00000000000A";
  const expected = { kind: "chat", chatId: id.toLowerCase() };
  assert.deepEqual(endpointOf(`/v1/ws/chat/${id}`), expected);
  assert.deepEqual(endpointOf(`/v1/ws/chat/${id}/`), expected);
  assert.deepEqual(endpointOf(`/v1/ws/chat/${encodeURIComponent(id)}%2D`), {
    kind: "chat",
    chatId: `${id.toLowerCase()}-`,
  });
});

Deno.test("endpointOf() keeps a segment with a malformed escape as it is", () => {
  assert.deepEqual(endpointOf("/v1/ws/chat/%E0%A4%A"), { kind: "chat", chatId: "%e0%a4%a" });
});

Deno.test("endpointOf() names /v1/ws/chats/ with or without its trailing slash, and nothing else", () => {
  assert.deepEqual(endpointOf("/v1/ws/chats/"), { kind: "chats" });
  assert.deepEqual(endpointOf("/v1/ws/chats"), { kind: "chats" });
  for (const path of ["/v1/ws/chat/", "/v1/ws/chat/a/b", "/v1/ws/chats/x", "/v1/ws/", "/healthz"]) {
    assert.equal(endpointOf(path), null, path);
  }
});
