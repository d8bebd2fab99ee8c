import assert from "node:assert/strict";
import { startCluster } from "./support/service.ts";

Deno.test("a participant connects and gets latest_chat then unread_messages", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await cluster.openChat("alice", chat.id);
  const first = await alice.next(() => true, "first frame");
  assert.equal(first.type, "latest_chat");
  assert.deepEqual(first, { type: "latest_chat", chat_id: chat.id, messages: [], has_more: false });
  const unread = await alice.nextOfType("unread_messages");
  assert.deepEqual(unread, { type: "unread_messages", chat_id: chat.id, count: 0, messages: [] });
});

Deno.test("a message reaches both sides and the receiver's unread count", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await cluster.openChat("alice", chat.id);
  await using vendor = await cluster.openChat("acme", chat.id);
  await alice.nextOfType("unread_messages");
  await vendor.nextOfType("unread_messages");
  const ack = await alice.request({
    action: "send_message",
    receiver_id: "acme",
    media_type: "text",
    content: "  hello  ",
  });
  assert.equal(ack.type, "ack");
  assert.equal(ack.message.content, "hello");
  assert.equal(ack.message.seq, 1);
  const received = await vendor.nextOfType("chat_message");
  assert.deepEqual(received.message, ack.message);
  const unread = await vendor.nextOfType("unread_messages");
  assert.equal(unread.count, 1);
  assert.equal(unread.messages[0].id, ack.message.id);
});
