import assert from "node:assert/strict";
import { socketUrl } from "./socket_url.ts";

Deno.test("socketUrl() turns the service's base URL into an endpoint's socket URL with the token", () => {
  assert.equal(
    socketUrl("http://localhost:8000", "c1", "t.k"),
    "ws://localhost:8000/v1/ws/chat/c1/?token=t.k",
  );
  assert.equal(
    socketUrl("https://chat.example/prefix", undefined, "a b"),
    "wss://chat.example/prefix/v1/ws/chats/?token=a+b",
  );
  assert.equal(socketUrl("ws://h:1/", "x/y", "t"), "ws://h:1/v1/ws/chat/x%2Fy/?token=t");
});

Deno.test("socketUrl() throws TypeError for a base that is not an http(s) or ws(s) URL", () => {
  for (const base of ["localhost:8000", "/v1", "ftp://chat.example", "mailto:a@b.c"]) {
    assert.throws(() => socketUrl(base, undefined, "t"), TypeError, base);
  }
});
