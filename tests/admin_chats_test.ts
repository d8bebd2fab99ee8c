import assert from "node:assert/strict";
import { failure, Status } from "./support/admin_client.ts";
import { startCluster } from "./support/service.ts";

Deno.test("CreateChat creates a chat once per pair and GetChat returns it", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const created = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  assert.equal(created.user_id, "alice");
  assert.equal(created.vendor_id, "acme");
  assert.equal(created.message_count, 0);
  assert.ok(created.created_at.seconds > 0);
  const again = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  assert.deepEqual(again, created);
  assert.deepEqual(await admin.call("GetChat", { chat_id: created.id }), created);
});

Deno.test("CreateChat and GetChat refuse bad ids with INVALID_ARGUMENT naming the field", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const empty = await failure(admin.call("CreateChat", { user_id: " ", vendor_id: "acme" }));
  assert.equal(empty.code, Status.INVALID_ARGUMENT);
  assert.match(empty.details, /^user_id: is required$/);
  const same = await failure(admin.call("CreateChat", { user_id: "acme", vendor_id: "acme" }));
  assert.equal(same.code, Status.INVALID_ARGUMENT);
  assert.match(same.details, /^vendor_id: /);
  const malformed = await failure(admin.call("GetChat", { chat_id: "chat-1" }));
  assert.equal(malformed.code, Status.INVALID_ARGUMENT);
  assert.match(malformed.details, /^chat_id: must be a UUID$/);
});

Deno.test("GetChat of an unknown chat is NOT_FOUND", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const error = await failure(admin.call("GetChat", { chat_id: crypto.randomUUID() }));
  assert.equal(error.code, Status.NOT_FOUND);
});

Deno.test("ListChats pages newest first to an empty next_page_token, with filters", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const created = [];
  for (const [user, vendor] of [["alice", "v0"], ["alice", "v1"], ["bob", "v0"], ["alice", "v2"]]) {
    created.push(await admin.call("CreateChat", { user_id: user, vendor_id: vendor }));
  }
  for (let index = 3; index < 7; index++) {
    created.push(await admin.call("CreateChat", { user_id: "alice", vendor_id: `v${index}` }));
  }
  const pages = await admin.pages("ListChats", { page_size: 3 }, "chats");
  assert.deepEqual(pages.map((page) => page.length), [3, 3, 2]);
  assert.deepEqual(pages.flat().map((chat) => chat.id), created.map((chat) => chat.id).reverse());

  const alice = await admin.pages("ListChats", { user_id: "alice", page_size: 2 }, "chats");
  assert.deepEqual(alice.map((page) => page.length), [2, 2, 2, 1]);
  assert.ok(alice.flat().every((chat) => chat.user_id === "alice"));
  const v0 = await admin.call("ListChats", { vendor_id: "v0" });
  assert.deepEqual(v0.chats.map((chat: { user_id: string }) => chat.user_id), ["bob", "alice"]);
  assert.equal(v0.next_page_token, "");
  const both = await admin.call("ListChats", { user_id: "bob", vendor_id: "v0" });
  assert.equal(both.chats.length, 1);
});

Deno.test("ListChats refuses forged, altered and borrowed page tokens with INVALID_ARGUMENT", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  for (let index = 0; index < 3; index++) {
    await admin.call("CreateChat", { user_id: "alice", vendor_id: `v${index}` });
  }
  const first = await admin.call("ListChats", { user_id: "alice", page_size: 1 });
  const token: string = first.next_page_token;
  assert.notEqual(token, "");
  const [version, payload, mac] = token.split(".") as [string, string, string];
  const forged = [
    "garbage",
    // the MAC's first character changed: its last ones may carry padding bits, or be "AA" already
    `${version}.${payload}.${mac.startsWith("A") ? "B" : "A"}${mac.slice(1)}`,
    `${version}.${
      btoa('{"e":99999999999999,"c":{"at":"x\'; drop table chats; --","key":"y"}}')
        .replaceAll("=", "")
    }.${mac}`,
    `${version}.${payload}`,
  ];
  for (const page_token of forged) {
    const error = await failure(
      admin.call("ListChats", { user_id: "alice", page_size: 1, page_token }),
    );
    assert.equal(error.code, Status.INVALID_ARGUMENT, page_token);
    assert.match(error.details, /^page_token: /);
  }
  // a token belongs to the request it was issued for
  const borrowed = await failure(
    admin.call("ListChats", { user_id: "bob", page_size: 1, page_token: token }),
  );
  assert.equal(borrowed.code, Status.INVALID_ARGUMENT);
  assert.match(borrowed.details, /^page_token: /);
  // a different page size is the same request
  const next = await admin.call("ListChats", { user_id: "alice", page_size: 5, page_token: token });
  assert.equal(next.chats.length, 2);
});

Deno.test("a page token from one instance is honoured by another", async () => {
  await using cluster = await startCluster({ grpc: true, instances: 2 });
  const [first, second] = [await cluster.admin(0), await cluster.admin(1)];
  for (let index = 0; index < 3; index++) {
    await first.call("CreateChat", { user_id: "alice", vendor_id: `v${index}` });
  }
  const page = await first.call("ListChats", { page_size: 2 });
  const rest = await second.call("ListChats", { page_size: 2, page_token: page.next_page_token });
  assert.equal(rest.chats.length, 1);
  assert.equal(rest.next_page_token, "");
});

Deno.test("page_size 0 means 50, more than 500 means 500, negative is INVALID_ARGUMENT", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  assert.equal((await admin.call("ListChats", { page_size: 0 })).chats.length, 1);
  assert.equal((await admin.call("ListChats", { page_size: 100_000 })).chats.length, 1);
  const error = await failure(admin.call("ListChats", { page_size: -1 }));
  assert.equal(error.code, Status.INVALID_ARGUMENT);
  assert.match(error.details, /^page_size: /);
});
