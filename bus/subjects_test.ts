import assert from "node:assert/strict";
import { createMemoryBus } from "./memory_bus.ts";
import { createSubjects } from "./subjects.ts";

const awkwardIds = [
  "a",
  "a.b",
  "ab",
  "*",
  ">",
  "a.*",
  "a.>",
  " ",
  "a b",
  "\t\n",
  ".",
  "..",
  "ü",
  "u\u0308",
  "😀",
  "\u0000",
  "a".repeat(500),
  "chat",
  "user.x",
];

function lastToken(subject: string): string {
  return subject.slice(subject.lastIndexOf(".") + 1);
}

Deno.test("chat() and user() turn any id into one token of [A-Za-z0-9_-]", () => {
  const subjects = createSubjects("app.v1");
  for (const id of awkwardIds) {
    for (const subject of [subjects.chat(id), subjects.user(id)]) {
      assert.match(subject, /^app\.v1\.(chat|user)\.[A-Za-z0-9_-]+$/, JSON.stringify(id));
    }
  }
});

Deno.test("different ids never share a subject, and each token decodes back to its id", () => {
  const subjects = createSubjects("app");
  const random = Array.from(
    { length: 500 },
    () => crypto.randomUUID().slice(0, 1 + Math.floor(Math.random() * 36)),
  );
  const ids = [...new Set([...awkwardIds, ...random])];
  const chats = new Set(ids.map((id) => subjects.chat(id)));
  const users = new Set(ids.map((id) => subjects.user(id)));
  assert.equal(chats.size, ids.length);
  assert.equal(users.size, ids.length);
  for (const id of ids) {
    const bytes = Uint8Array.fromBase64(lastToken(subjects.chat(id)), { alphabet: "base64url" });
    assert.equal(new TextDecoder().decode(bytes), id);
  }
});

Deno.test("allChats receives every chat's subject and no user's", () => {
  const subjects = createSubjects("app");
  const bus = createMemoryBus();
  const seen: string[] = [];
  bus.subscribe(subjects.allChats, (_, subject) => seen.push(subject));
  for (const id of awkwardIds) {
    bus.publish(subjects.chat(id), new Uint8Array());
    bus.publish(subjects.user(id), new Uint8Array());
  }
  assert.deepEqual(seen, awkwardIds.map((id) => subjects.chat(id)));
});

Deno.test("createSubjects() refuses a prefix that is not dot-separated [A-Za-z0-9_-] tokens", () => {
  for (const prefix of ["", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "ü", "a\n"]) {
    assert.throws(() => createSubjects(prefix), (error) => {
      assert.ok(error instanceof Error);
      assert.ok(error.message.includes(JSON.stringify(prefix)), error.message);
      return true;
    });
  }
  assert.doesNotThrow(() => createSubjects("chat-svc_2.prod"));
});

Deno.test("chat() and user() refuse an empty id and one with a lone surrogate", () => {
  const subjects = createSubjects("app");
  for (const id of ["", "\uD800", "a\uDC00b"]) {
    assert.throws(() => subjects.chat(id), Error);
    assert.throws(() => subjects.user(id), Error);
  }
});
