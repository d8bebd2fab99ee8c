import assert from "node:assert/strict";
import { startCluster } from "./support/service.ts";
import {
  acked,
  askUnread,
  joinAllChats,
  joinChat,
  refused,
  sendText,
  unknownId,
} from "./support/steps.ts";
import { type Frame, TestSocket } from "./support/ws_client.ts";

Deno.test("another chat's message id is not_found on /v1/ws/chat/ and nothing changes", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const mine = await service.createChat("mallory", "vend-1");
  const theirs = await service.createChat("victim", "vend-1");
  await using victim = await joinChat(cluster, "victim", theirs.id);
  await using vendor = await joinChat(cluster, "vend-1", theirs.id);
  const fromVictim = await sendText(victim, "vend-1", "private");
  const fromVendor = await sendText(vendor, "victim", "also private");
  await using mallory = await joinChat(cluster, "mallory", mine.id);

  for (const message_id of [fromVictim.id, fromVendor.id]) {
    await refused(mallory, { action: "read_message", message_id }, "not_found");
    await refused(mallory, { action: "delete_message", message_id }, "not_found");
    await refused(mallory, { action: "edit_message", message_id, content: "pwned" }, "not_found");
  }
  // the vendor is a participant of both chats: an id from one is unknown in the other
  await using vendorInMine = await joinChat(cluster, "vend-1", mine.id);
  await refused(vendorInMine, { action: "read_message", message_id: fromVictim.id }, "not_found");
  await refused(vendorInMine, { action: "delete_message", message_id: fromVendor.id }, "not_found");
  await refused(
    vendorInMine,
    { action: "edit_message", message_id: fromVendor.id, content: "moved" },
    "not_found",
  );

  await acked(victim, { action: "load_latest_chat" });
  const page = await victim.nextOfType("latest_chat");
  assert.deepEqual(
    page.messages.map((message: Frame) => [message.content, message.is_read, message.deleted]),
    [["private", false, false], ["also private", false, false]],
  );
});

Deno.test("on /v1/ws/chats/ another chat's id is forbidden for every action", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  await service.createChat("mallory", "vend-9");
  const theirs = await service.createChat("victim", "vend-1");
  await using victim = await joinChat(cluster, "victim", theirs.id);
  const sent = await sendText(victim, "vend-1", "private");
  await using mallory = await joinAllChats(cluster, "mallory");

  for (const chat_id of [theirs.id, unknownId()]) {
    const frames: Frame[] = [
      { action: "load_latest_chat" },
      { action: "send_message", receiver_id: "vend-1", media_type: "text", content: "hi" },
      { action: "send_message", receiver_id: "victim", media_type: "text", content: "hi" },
      { action: "read_message", message_id: sent.id },
      { action: "read_up_to", seq: 10 },
      { action: "delete_message", message_id: sent.id },
      { action: "edit_message", message_id: sent.id, content: "pwned" },
      { action: "unread_message" },
      { action: "typing", is_typing: true },
    ];
    for (const frame of frames) {
      const error = await refused(mallory, { ...frame, chat_id }, "forbidden");
      assert.equal(error.action, frame.action);
    }
  }
  assert.deepEqual(mallory.pending("latest_chat"), []);
  assert.deepEqual(mallory.pending("unread_messages"), []);
  assert.deepEqual(victim.pending("typing"), []);

  await acked(victim, { action: "load_latest_chat" });
  const page = await victim.nextOfType("latest_chat");
  assert.deepEqual(
    page.messages.map((message: Frame) => [message.content, message.is_read, message.deleted]),
    [["private", false, false]],
  );
  assert.equal((await askUnread(victim)).count, 0);
});

Deno.test("a chats socket hears only its own chats' events", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const mine = await service.createChat("cust-1", "vend-1");
  const theirs = await service.createChat("cust-2", "vend-1");
  await using outsider = await joinAllChats(cluster, "cust-1");
  await using other = await joinChat(cluster, "cust-2", theirs.id);
  await using vendorAll = await joinAllChats(cluster, "vend-1");
  const mark = outsider.frames.length;

  await sendText(other, "vend-1", "not for cust-1");
  await acked(other, { action: "typing", is_typing: true });
  await vendorAll.nextOfType("typing");
  const barrier = await sendText(vendorAll, "cust-1", "for cust-1", { chat_id: mine.id });
  const seen = await outsider.next(
    (frame) => frame.type === "chat_message" && frame.message.id === barrier.id,
    "the barrier message",
  );
  const before = outsider.frames.slice(mark, outsider.frames.indexOf(seen));
  assert.deepEqual(before, []);
});

Deno.test("a chat id in the path is matched exactly, never as a pattern", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  const token = await cluster.token("cust-1");
  const variants = [
    `${chat.id.slice(0, -1)}%25`,
    `${chat.id.slice(0, -1)}_`,
    `${chat.id.slice(0, -1)}%`,
    `${chat.id}%20or%201=1`,
    `${chat.id}%00`,
  ];
  for (const variant of variants) {
    await using socket = await TestSocket.open(`${cluster.main.wsUrl}/v1/ws/chat/${variant}/`, {
      token,
    });
    assert.equal((await socket.closed).code, 4403, variant);
    assert.deepEqual(socket.frames, []);
  }
});

Deno.test("a chat id in the path in upper case is the same chat", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using socket = await TestSocket.open(
    `${cluster.main.wsUrl}/v1/ws/chat/${chat.id.toUpperCase()}/`,
    { token: await cluster.token("cust-1") },
  );
  assert.equal((await socket.nextOfType("latest_chat")).chat_id, chat.id);
  await socket.nextOfType("unread_messages");
  const sent = await sendText(socket, "vend-1", "hello");
  assert.equal(sent.chat_id, chat.id);
  assert.equal((await socket.nextOfType("chat_message")).message.id, sent.id);
});
