import assert from "node:assert/strict";
import postgres from "postgres";
import { failure, type Reply, Status } from "./support/admin_client.ts";
import { clockAhead } from "./support/clock.ts";
import { waitingForLock } from "./support/database.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { joinAllChats, joinChat, sendText } from "./support/steps.ts";
import { within } from "./support/wait.ts";

const by = { moderator_id: "mod-1", reason: "spam" };

/** Opens a socket on the second instance and returns the code the server closes it with. */
async function refusedConnection(cluster: TestCluster, userId: string, chatId: string) {
  const socket = await cluster.openChat(userId, chatId, 1);
  return (await socket.closed).code;
}

Deno.test("DeleteMessage tombstones, tells sockets on every instance and is audited", async () => {
  await using cluster = await startCluster({ grpc: true, instances: 2 });
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await using alice = await joinChat(cluster, "alice", chat.id, 0);
  await using vendor = await joinChat(cluster, "acme", chat.id, 1);
  const sent = await sendText(alice, "acme", "buy cheap watches");
  await vendor.nextOfType("chat_message");

  const deleted = await admin.call("DeleteMessage", { message_id: sent.id, ...by });
  assert.equal(deleted.deleted, true);
  assert.equal(deleted.deleted_by, "mod-1");
  assert.equal(deleted.content, "buy cheap watches");
  for (const socket of [vendor, alice]) {
    const event = await socket.nextOfType("message_deleted");
    assert.equal(event.message_id, sent.id);
    assert.equal(event.deleted_by, "mod-1");
    assert.equal(event.seq, 1);
  }
  const history = await vendor.request({ action: "load_latest_chat" });
  assert.equal(history.type, "ack");
  const page = vendor.pending("latest_chat").at(-1)!;
  assert.equal(page.messages[0].deleted, true);
  assert.equal(page.messages[0].content, null);

  const [action] = (await admin.call("ListModerationActions", {})).actions;
  assert.equal(action.action, "MODERATION_ACTION_TYPE_DELETE_MESSAGE");
  assert.equal(action.moderator_id, "mod-1");
  assert.equal(action.target_user_id, "alice");
  assert.equal(action.target_message_id, sent.id);
  assert.equal(action.reason, "spam");
  assert.ok(Math.abs(action.created_at.seconds * 1000 - Date.now()) < 60_000);
});

Deno.test("DeleteMessage that waits on the sender's own deletion of the message answers her tombstone, is audited alone and tells no one", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await using alice = await joinChat(cluster, "alice", chat.id);
  const sent = await sendText(alice, "acme", "buy cheap watches");
  const sql = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
  // the sender's deletion, made and not yet committed: the moderator's waits on the row, and
  // must answer the message as that deletion leaves it, not as its own snapshot had it
  const held = Promise.withResolvers<void>();
  const made = Promise.withResolvers<void>();
  const senderDeletion = sql.begin(async (tx) => {
    await tx`update messages set deleted_at = now(), deleted_by = 'alice' where id = ${sent.id}`;
    made.resolve();
    await held.promise;
  });
  try {
    await made.promise;
    const deleting = admin.call("DeleteMessage", { message_id: sent.id, ...by });
    await within(waitingForLock(sql), 10_000, "DeleteMessage waiting on the row");
    held.resolve();
    await senderDeletion;
    const deleted = await deleting;
    assert.deepEqual([deleted.deleted, deleted.deleted_by], [true, "alice"]);
  } finally {
    held.resolve();
    await senderDeletion;
    await sql.end();
  }
  const actions = (await admin.call("ListModerationActions", {})).actions;
  assert.deepEqual(
    actions.map((action: Reply) => [action.target_user_id, action.target_message_id]),
    [["alice", sent.id]],
  );
  await sendText(alice, "acme", "still here");
  assert.deepEqual(alice.pending("message_deleted"), []);
});

Deno.test("BanUser closes the user's sockets everywhere with 4403 and refuses them until UnbanUser", async () => {
  await using cluster = await startCluster({ grpc: true, instances: 2 });
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const chatSocket = await joinChat(cluster, "alice", chat.id, 1);
  const chatsSocket = await joinAllChats(cluster, "alice", 1);
  await using vendor = await joinChat(cluster, "acme", chat.id, 1);

  const ban = await admin.call("BanUser", { user_id: "alice", ...by, duration_seconds: 0 });
  assert.equal(ban.user_id, "alice");
  assert.equal(ban.moderator_id, "mod-1");
  assert.equal(ban.expires_at, null);
  assert.equal((await chatSocket.closed).code, 4403);
  assert.equal((await chatsSocket.closed).code, 4403);
  assert.equal(await refusedConnection(cluster, "alice", chat.id), 4403);
  // the other side of the chat stays connected
  await sendText(vendor, "alice", "still here");
  const bans = (await admin.call("ListBans", {})).bans;
  assert.deepEqual(bans.map((each: Reply) => each.user_id), ["alice"]);

  await admin.call("UnbanUser", { user_id: "alice", moderator_id: "mod-2", reason: "appeal" });
  await using back = await joinChat(cluster, "alice", chat.id, 1);
  await sendText(back, "acme", "thanks");
  assert.deepEqual((await admin.call("ListBans", {})).bans, []);
  const actions = (await admin.call("ListModerationActions", { target_user_id: "alice" })).actions;
  assert.deepEqual(actions.map((each: Reply) => [each.action, each.moderator_id, each.reason]), [
    ["MODERATION_ACTION_TYPE_UNBAN_USER", "mod-2", "appeal"],
    ["MODERATION_ACTION_TYPE_BAN_USER", "mod-1", "spam"],
  ]);
});

Deno.test("a user with the longest id a socket takes (256 characters) can be given a chat and banned", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin(0);
  const longId = "u".repeat(256);
  const chat = await admin.call("CreateChat", { user_id: longId, vendor_id: "acme" });
  const socket = await joinChat(cluster, longId, chat.id);
  await admin.call("BanUser", { user_id: longId, ...by, duration_seconds: 0 });
  assert.equal((await socket.closed).code, 4403);
  const tooLong = await failure(admin.call("BanUser", { user_id: `${longId}u`, ...by }));
  assert.equal(tooLong.code, Status.INVALID_ARGUMENT);
  assert.match(tooLong.details, /user_id: is too long/);
});

Deno.test("ListBans pages past a ban of a user with the longest id (256 characters)", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const longIds = ["a", "b", "c"].map((letter) => letter.repeat(256));
  for (const user of longIds) {
    await admin.call("BanUser", { user_id: user, ...by, duration_seconds: 0 });
  }
  // each page ends on a long id, the key of its next page's token
  const pages = await admin.pages("ListBans", { page_size: 1 }, "bans");
  assert.deepEqual(
    pages.map((page) => page.map((ban) => ban.user_id)),
    longIds.reverse().map((id) => [id]),
  );
});

/** Lets the user's ban run out, as if its duration had passed. */
async function expireBan(cluster: TestCluster, userId: string) {
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql`update bans set expires_at = now() - interval '1 second' where user_id = ${userId}`;
  } finally {
    await sql.end();
  }
}

Deno.test("a ban with a duration lets the user back once it has run out", async () => {
  await using cluster = await startCluster({ grpc: true, instances: 2 });
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const ban = await admin.call("BanUser", { user_id: "alice", ...by, duration_seconds: 3600 });
  assert.equal(ban.expires_at.seconds - ban.created_at.seconds, 3600);
  assert.equal(await refusedConnection(cluster, "alice", chat.id), 4403);

  await expireBan(cluster, "alice");
  await using back = await joinChat(cluster, "alice", chat.id, 1);
  await sendText(back, "acme", "hello again");
  assert.deepEqual((await admin.call("ListBans", {})).bans, []);
});

Deno.test("a ban with a duration runs from when the database stores it, whatever the instance's clock", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const ban = await (async () => {
    // the instance's clock two minutes behind the database's
    using _behind = clockAhead(-120_000);
    return await admin.call("BanUser", { user_id: "alice", ...by, duration_seconds: 60 });
  })();
  assert.equal(ban.expires_at.seconds - ban.created_at.seconds, 60);
  const socket = await cluster.openChat("alice", chat.id);
  assert.equal((await socket.closed).code, 4403);
  assert.equal((await admin.call("ListBans", {})).bans.length, 1);
});

Deno.test("DisconnectUser closes the user's sockets on every instance with 4408", async () => {
  await using cluster = await startCluster({ grpc: true, instances: 2 });
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const first = await joinChat(cluster, "alice", chat.id, 0);
  const second = await joinAllChats(cluster, "alice", 1);
  await using vendor = await joinChat(cluster, "acme", chat.id, 1);
  await admin.call("DisconnectUser", { user_id: "alice", ...by });
  assert.equal((await first.closed).code, 4408);
  assert.equal((await second.closed).code, 4408);
  // not a ban: the user may come straight back, and the vendor never left
  await using back = await joinChat(cluster, "alice", chat.id, 1);
  await sendText(back, "acme", "reconnected");
  await vendor.nextOfType("chat_message");
  const [action] = (await admin.call("ListModerationActions", { moderator_id: "mod-1" })).actions;
  assert.equal(action.action, "MODERATION_ACTION_TYPE_DISCONNECT_USER");
  assert.equal(action.target_user_id, "alice");
  assert.equal(action.target_message_id, "");
});

Deno.test("moderation calls need a moderator and a reason, and known targets", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const cases: Array<[string, object, number, RegExp]> = [
    ["BanUser", { user_id: "alice", reason: "x" }, Status.INVALID_ARGUMENT, /^moderator_id: /],
    ["BanUser", { user_id: "alice", moderator_id: "m" }, Status.INVALID_ARGUMENT, /^reason: /],
    [
      "BanUser",
      { user_id: "alice", ...by, duration_seconds: -5 },
      Status.INVALID_ARGUMENT,
      /^duration_seconds: /,
    ],
    ["DisconnectUser", { ...by }, Status.INVALID_ARGUMENT, /^user_id: is required$/],
    ["DeleteMessage", { message_id: crypto.randomUUID(), ...by }, Status.NOT_FOUND, /./],
    ["UnbanUser", { user_id: "nobody", ...by }, Status.NOT_FOUND, /./],
  ];
  for (const [method, request, code, details] of cases) {
    const error = await failure(admin.call(method, request));
    assert.equal(error.code, code, `${method} ${JSON.stringify(request)}: ${error.details}`);
    assert.match(error.details, details);
  }
  assert.deepEqual((await admin.call("ListModerationActions", {})).actions, []);
});

Deno.test("ListModerationActions filters by moderator and target and pages to the last page", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  for (const user of ["u1", "u2", "u3"]) {
    await admin.call("DisconnectUser", { user_id: user, moderator_id: "mod-a", reason: "r" });
    await admin.call("DisconnectUser", { user_id: user, moderator_id: "mod-b", reason: "r" });
  }
  const pages = await admin.pages("ListModerationActions", { page_size: 4 }, "actions");
  assert.deepEqual(pages.map((page) => page.length), [4, 2]);
  assert.deepEqual(
    pages.flat().map((action) => `${action.moderator_id}:${action.target_user_id}`),
    ["mod-b:u3", "mod-a:u3", "mod-b:u2", "mod-a:u2", "mod-b:u1", "mod-a:u1"],
  );
  const modA = await admin.pages(
    "ListModerationActions",
    { moderator_id: "mod-a", page_size: 2 },
    "actions",
  );
  assert.deepEqual(modA.flat().map((action) => action.target_user_id), ["u3", "u2", "u1"]);
  const both = await admin.call("ListModerationActions", {
    moderator_id: "mod-b",
    target_user_id: "u2",
  });
  assert.equal(both.actions.length, 1);
  assert.equal(both.next_page_token, "");
});

Deno.test("ListBans pages the bans in force, newest first", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  for (const user of ["u1", "u2", "u3"]) {
    await admin.call("BanUser", { user_id: user, ...by, duration_seconds: 600 });
  }
  const pages = await admin.pages("ListBans", { page_size: 2 }, "bans");
  assert.deepEqual(pages.map((page) => page.map((ban) => ban.user_id)), [["u3", "u2"], ["u1"]]);
});

Deno.test("ListBans lists each ban in force once while a ban not yet listed is replaced, which keeps when it began", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const first = new Map<string, Reply>();
  for (const user of ["u1", "u2", "u3"]) {
    first.set(user, await admin.call("BanUser", { user_id: user, ...by, duration_seconds: 600 }));
  }
  const page = await admin.call("ListBans", { page_size: 1 });
  const replaced = await admin.call("BanUser", {
    user_id: "u1",
    moderator_id: "mod-2",
    reason: "again",
    duration_seconds: 7200,
  });
  assert.deepEqual(replaced.created_at, first.get("u1")!.created_at, "the ban began then");
  assert.equal(replaced.moderator_id, "mod-2");
  assert.equal(replaced.expires_at.seconds - Math.floor(Date.now() / 1000) > 7000, true);
  const listed = page.bans.map((ban: Reply) => ban.user_id);
  let token = page.next_page_token;
  while (token) {
    const next = await admin.call("ListBans", { page_size: 1, page_token: token });
    listed.push(...next.bans.map((ban: Reply) => ban.user_id));
    token = next.next_page_token;
  }
  assert.deepEqual(listed, ["u3", "u2", "u1"]);

  // A ban that had run out is over: banning again makes a new one, listed first.
  await expireBan(cluster, "u2");
  const renewed = await admin.call("BanUser", { user_id: "u2", ...by, duration_seconds: 600 });
  assert.notDeepEqual(renewed.created_at, first.get("u2")!.created_at);
  const bans = (await admin.call("ListBans", {})).bans.map((ban: Reply) => ban.user_id);
  assert.deepEqual(bans, ["u2", "u3", "u1"]);
});

/**
 * alice's message in her chat with acme and bob's ban; `unchanged` asserts that the message
 * is still there, bob alone is banned and the audit log is as it was.
 */
async function moderationScene(cluster: TestCluster) {
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const alice = await joinChat(cluster, "alice", chat.id);
  const sent = await sendText(alice, "acme", "hello");
  await admin.call("BanUser", { user_id: "bob", ...by, duration_seconds: 0 });
  const audited = (await admin.call("ListModerationActions", {})).actions;
  const unchanged = async () => {
    assert.equal((await admin.call("GetMessage", { message_id: sent.id })).deleted, false);
    const bans = (await admin.call("ListBans", {})).bans;
    assert.deepEqual(bans.map((ban: Reply) => ban.user_id), ["bob"]);
    assert.deepEqual((await admin.call("ListModerationActions", {})).actions, audited);
  };
  return { admin, alice, sent, unchanged };
}

Deno.test("a NUL in any string field is INVALID_ARGUMENT naming it, and nothing is changed", async () => {
  await using cluster = await startCluster({ grpc: true });
  const { admin, sent, unchanged } = await moderationScene(cluster);
  const nul = "spam\0";
  const cases: Array<[string, object, string]> = [
    ["DeleteMessage", { message_id: sent.id, moderator_id: "mod-1", reason: nul }, "reason"],
    ["DeleteMessage", { message_id: sent.id, moderator_id: nul, reason: "spam" }, "moderator_id"],
    ["UnbanUser", { user_id: "bob", moderator_id: "mod-1", reason: nul }, "reason"],
    ["BanUser", { user_id: "alice", ...by, reason: nul, duration_seconds: 0 }, "reason"],
    ["DisconnectUser", { user_id: nul, ...by }, "user_id"],
    ["CreateChat", { user_id: "carol", vendor_id: nul }, "vendor_id"],
    ["GetMessage", { message_id: `${sent.id}\0` }, "message_id"],
    ["SearchMessages", { query: nul }, "query"],
    ["ListModerationActions", { moderator_id: nul }, "moderator_id"],
    ["ListChats", { page_token: nul }, "page_token"],
  ];
  for (const [method, request, field] of cases) {
    const error = await failure(admin.call(method, request));
    assert.equal(error.code, Status.INVALID_ARGUMENT, `${method}: ${error.details}`);
    assert.equal(error.details, `${field}: must not contain NUL characters`, method);
  }
  await unchanged();
});

Deno.test("UnbanUser of a ban that has run out is NOT_FOUND and is not audited", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  await admin.call("BanUser", { user_id: "alice", ...by, duration_seconds: 3600 });
  await expireBan(cluster, "alice");
  const audited = (await admin.call("ListModerationActions", {})).actions;

  const error = await failure(admin.call("UnbanUser", { user_id: "alice", ...by }));
  assert.equal(error.code, Status.NOT_FOUND, error.details);
  assert.deepEqual((await admin.call("ListModerationActions", {})).actions, audited);
});

Deno.test("a moderation whose audit row cannot be written changes nothing and tells no one", async () => {
  await using cluster = await startCluster({ grpc: true });
  const { admin, alice, sent, unchanged } = await moderationScene(cluster);
  // the audit log refuses one reason: its insert fails after the change it records
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql`alter table moderation_actions
                add constraint refuse_test_reason check (reason <> 'unrecordable')`;
  } finally {
    await sql.end();
  }
  const unrecordable = { moderator_id: "mod-1", reason: "unrecordable" };
  const calls: Array<[string, object]> = [
    ["DeleteMessage", { message_id: sent.id, ...unrecordable }],
    ["BanUser", { user_id: "alice", ...unrecordable, duration_seconds: 0 }],
    ["UnbanUser", { user_id: "bob", ...unrecordable }],
  ];
  for (const [method, request] of calls) await failure(admin.call(method, request));

  await unchanged();
  // alice heard of no delete and is still connected: the next frame she gets is her own ack
  await sendText(alice, "acme", "still here");
  assert.deepEqual(alice.pending("message_deleted"), []);
});
