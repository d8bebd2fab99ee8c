import assert from "node:assert/strict";
import { failure, Status } from "./support/admin_client.ts";
import { startCluster } from "./support/service.ts";
import { joinChat, seedMessages, sendText } from "./support/steps.ts";
import { follow } from "./support/watch_stream.ts";
import { within } from "./support/wait.ts";

Deno.test("WatchEvents streams a message sent over WebSocket on another instance", async () => {
  await using cluster = await startCluster({ grpc: true, instances: 2 });
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const other = await admin.call("CreateChat", { user_id: "bob", vendor_id: "acme" });
  const everything = admin.watch({});
  const oneChat = admin.watch({ chat_id: chat.id });
  const all = follow(everything);
  const one = follow(oneChat);
  await Promise.all([all.subscribed, one.subscribed]);

  await using bob = await joinChat(cluster, "bob", other.id, 1);
  await using alice = await joinChat(cluster, "alice", chat.id, 1);
  await sendText(bob, "acme", "from bob");
  const sent = await sendText(alice, "acme", "from alice");
  await alice.request({ action: "read_message", message_id: sent.id }); // refused: own message
  await using vendor = await joinChat(cluster, "acme", chat.id, 1);
  await vendor.request({ action: "read_message", message_id: sent.id });

  const [event, read] = await one.take(2);
  assert.equal(event!.type, "CHAT_EVENT_TYPE_CHAT_MESSAGE");
  assert.equal(event!.chat_id, chat.id);
  assert.equal(event!.message_id, sent.id);
  assert.equal(event!.user_id, "alice");
  assert.equal(event!.seq, 1);
  assert.equal(event!.message.content, "from alice");
  assert.equal(event!.at.seconds, Math.floor(Date.parse(sent.created_at) / 1000));
  assert.equal(read!.type, "CHAT_EVENT_TYPE_MESSAGE_READ");
  assert.equal(read!.user_id, "acme");
  const seen = await all.take(3);
  assert.deepEqual(seen.map((each) => [each.chat_id, each.type]), [
    [other.id, "CHAT_EVENT_TYPE_CHAT_MESSAGE"],
    [chat.id, "CHAT_EVENT_TYPE_CHAT_MESSAGE"],
    [chat.id, "CHAT_EVENT_TYPE_MESSAGE_READ"],
  ]);
  everything.cancel();
  oneChat.cancel();
  assert.equal((await all.ended).code, Status.CANCELLED);
  assert.equal((await one.ended).code, Status.CANCELLED);
});

Deno.test("WatchEvents with user_id streams only that user's chats", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const other = await admin.call("CreateChat", { user_id: "bob", vendor_id: "globex" });
  const stream = admin.watch({ user_id: "acme" });
  const watched = follow(stream);
  await watched.subscribed;
  await using bob = await joinChat(cluster, "bob", other.id);
  await using alice = await joinChat(cluster, "alice", chat.id);
  await sendText(bob, "globex", "not for acme");
  const sent = await sendText(alice, "acme", "for acme");
  await admin.call("DeleteMessage", { message_id: sent.id, moderator_id: "mod", reason: "r" });
  const events = await watched.take(2);
  assert.deepEqual(events.map((event) => [event.type, event.message_id, event.user_id]), [
    ["CHAT_EVENT_TYPE_CHAT_MESSAGE", sent.id, "alice"],
    ["CHAT_EVENT_TYPE_MESSAGE_DELETED", sent.id, "mod"],
  ]);
  stream.cancel();
  assert.equal((await watched.ended).code, Status.CANCELLED);
  assert.equal(watched.events.length, 2);
});

Deno.test("WatchEvents and GetChat take a chat id in upper case as the same chat", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const upper = chat.id.toUpperCase();
  assert.equal((await admin.call("GetChat", { chat_id: upper })).id, chat.id);
  const stream = admin.watch({ chat_id: upper });
  const watched = follow(stream);
  await watched.subscribed;
  await using alice = await joinChat(cluster, "alice", chat.id);
  const sent = await sendText(alice, "acme", "shouted id");
  const [event] = await watched.take(1);
  assert.equal(event!.chat_id, chat.id);
  assert.equal(event!.message_id, sent.id);
  stream.cancel();
  assert.equal((await watched.ended).code, Status.CANCELLED);
});

Deno.test("WatchEvents of an unknown chat is NOT_FOUND and needs the token", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const unknown = follow(admin.watch({ chat_id: crypto.randomUUID() }));
  assert.equal((await unknown.ended).code, Status.NOT_FOUND);
  const malformed = follow(admin.watch({ chat_id: "nope" }));
  const status = await malformed.ended;
  assert.equal(status.code, Status.INVALID_ARGUMENT);
  assert.match(status.details, /^chat_id: /);
  const anonymous = follow(admin.watch({}, { token: null }));
  assert.equal((await anonymous.ended).code, Status.UNAUTHENTICATED);
  const unauthorised = await failure(admin.call("GetStats", {}, { token: "wrong" }));
  assert.equal(unauthorised.code, Status.UNAUTHENTICATED);
});

Deno.test("a WatchEvents reader that falls behind is ended with RESOURCE_EXHAUSTED and never delays WebSocket delivery", async () => {
  await using cluster = await startCluster({
    grpc: true,
    instances: 2,
    env: { GRPC_WATCH_BUFFER: "8" },
  });
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const stream = admin.watch({ chat_id: chat.id });
  const watched = follow(stream);
  await watched.subscribed;
  stream.pause(); // a reader that stops reading

  await using vendor = await joinChat(cluster, "acme", chat.id, 1);
  const count = 80;
  // large messages fill the HTTP/2 window and grpc-js's buffer quickly; the rest queue up to 8
  await seedMessages(cluster, chat.id, {
    from: "alice",
    to: "acme",
    count,
    text: (n) => `${n} ${"x".repeat(3_990)}`,
  });
  await within(
    (async () => {
      for (let seq = 1; seq <= count; seq++) {
        await vendor.next(
          (frame) => frame.type === "chat_message" && frame.message.seq === seq,
          `message ${seq} on the other instance`,
        );
      }
    })(),
    10_000,
    "every message over WebSocket while the watcher is stalled",
  );

  stream.resume();
  const status = await within(watched.ended, 10_000, "the end of the stalled stream");
  assert.equal(status.code, Status.RESOURCE_EXHAUSTED);
  assert.ok(watched.events.length < count, `${watched.events.length} events arrived`);
  assert.deepEqual(
    watched.events.map((event) => event.seq),
    watched.events.map((_, index) => index + 1),
  );
});

Deno.test("GRPC_MAX_WATCH_STREAMS bounds the WatchEvents streams open on each instance", async () => {
  await using cluster = await startCluster({
    grpc: true,
    instances: 2,
    env: { GRPC_MAX_WATCH_STREAMS: "1" },
  });
  const [first, second] = [await cluster.admin(0), await cluster.admin(1)];
  const kept = first.watch({});
  const watched = follow(kept);
  await watched.subscribed;
  const refused = await within(follow(first.watch({})).ended, 5_000, "the refusal");
  assert.equal(refused.code, Status.RESOURCE_EXHAUSTED);
  assert.match(
    refused.details,
    /^too many WatchEvents streams open on this instance \(at most 1\)/,
  );
  // the bound is each instance's own
  await follow(second.watch({})).subscribed;
  kept.cancel();
  assert.equal((await watched.ended).code, Status.CANCELLED);
});
