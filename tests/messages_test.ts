import assert from "node:assert/strict";
import { startCluster } from "./support/service.ts";
import {
  framesBetween,
  joinAllChats,
  joinChat,
  messageWithSeq,
  refused,
  seedMessages,
  sendText,
} from "./support/steps.ts";

const isoUtc = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$/;

Deno.test("send_message acks the stored message with every field of the contract", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const message = await sendText(customer, "vend-1", "  hello there \n", { client_id: "c-1" });
  assert.deepEqual(Object.keys(message).sort(), [
    "chat_id",
    "client_id",
    "content",
    "created_at",
    "deleted",
    "edited_at",
    "id",
    "is_read",
    "media_type",
    "media_url",
    "read_at",
    "receiver_id",
    "sender_id",
    "seq",
    "updated_at",
  ]);
  assert.equal(typeof message.id, "string");
  assert.match(message.created_at, isoUtc);
  assert.match(message.updated_at, isoUtc);
  assert.deepEqual(message, {
    id: message.id,
    chat_id: chat.id,
    seq: 1,
    sender_id: "cust-1",
    receiver_id: "vend-1",
    media_type: "text",
    content: "hello there",
    media_url: null,
    is_read: false,
    read_at: null,
    edited_at: null,
    deleted: false,
    created_at: message.created_at,
    updated_at: message.updated_at,
    client_id: "c-1",
  });
});

Deno.test("seq starts at 1 in each chat and rises by one with each message", async () => {
  await using cluster = await startCluster();
  const first = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  const second = await cluster.main.service.chat.createChat("cust-1", "vend-2");
  await using inFirst = await joinChat(cluster, "cust-1", first.id);
  await using inSecond = await joinChat(cluster, "cust-1", second.id);
  const seqs = [];
  for (let index = 0; index < 3; index++) {
    seqs.push((await sendText(inFirst, "vend-1", `a${index}`)).seq);
  }
  seqs.push((await sendText(inSecond, "vend-2", "b0")).seq);
  seqs.push((await sendText(inFirst, "vend-1", "a3")).seq);
  assert.deepEqual(seqs, [1, 2, 3, 1, 4]);
});

Deno.test("chat_message reaches every socket of both sides, the sender's own sockets included", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using customerAgain = await joinChat(cluster, "cust-1", chat.id);
  await using customerAll = await joinAllChats(cluster, "cust-1");
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using vendorAll = await joinAllChats(cluster, "vend-1");
  await using agent = await joinChat(cluster, "agent-1", chat.id);
  await using agentAll = await joinAllChats(cluster, "agent-1");

  const sent = await sendText(customer, "vend-1", "to everyone");
  for (const socket of [customer, customerAgain, customerAll, vendor, vendorAll, agent, agentAll]) {
    const event = await socket.nextOfType("chat_message");
    assert.deepEqual(event, { type: "chat_message", chat_id: chat.id, message: sent });
  }
});

Deno.test("without a request_id a message is broadcast but not acknowledged", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const mark = customer.frames.length;
  customer.send({
    action: "send_message",
    receiver_id: "vend-1",
    media_type: "text",
    content: "a",
  });
  const event = await vendor.nextOfType("chat_message");
  assert.equal(event.message.content, "a");
  const second = await sendText(customer, "vend-1", "b");
  const ack = customer.frames.find((frame) =>
    frame.type === "ack" && frame.message?.id === second.id
  );
  assert.ok(ack);
  assert.deepEqual(
    framesBetween(customer, mark, ack).map((frame) => [frame.type, frame.message?.content]),
    [["chat_message", "a"], ["chat_message", "b"]],
  );
});

Deno.test("after each message the receiver side's sockets get unread_messages, the sender side's do not", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using customerAll = await joinAllChats(cluster, "cust-1");
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using vendorAll = await joinAllChats(cluster, "vend-1");
  await using agent = await joinChat(cluster, "agent-1", chat.id);
  await using agentAll = await joinAllChats(cluster, "agent-1");
  const customerMark = customer.frames.length;
  const customerAllMark = customerAll.frames.length;

  const first = await sendText(customer, "vend-1", "one");
  const second = await sendText(customer, "agent-1", "two");
  for (const socket of [vendor, vendorAll, agent, agentAll]) {
    const afterFirst = await socket.nextOfType("unread_messages");
    assert.deepEqual(afterFirst, {
      type: "unread_messages",
      chat_id: chat.id,
      count: 1,
      messages: [first],
    });
    const afterSecond = await socket.nextOfType("unread_messages");
    assert.equal(afterSecond.count, 2);
    assert.deepEqual(afterSecond.messages, [first, second]);
  }

  // barrier: the vendor's reply reaches the customer after anything the two sends caused
  const reply = await sendText(vendor, "cust-1", "three");
  for (
    const [socket, mark] of [[customer, customerMark], [customerAll, customerAllMark]] as const
  ) {
    const barrier = await messageWithSeq(socket, reply.seq);
    const before = framesBetween(socket, mark, barrier).map((frame) => frame.type);
    assert.ok(!before.includes("unread_messages"), `customer got ${before.join(", ")}`);
    const unread = await socket.nextOfType("unread_messages");
    assert.deepEqual(unread.messages, [reply]);
  }
});

Deno.test("unread_messages carries the count of all unread and the newest 50, oldest first", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await seedMessages(cluster, chat.id, { from: "cust-1", to: "vend-1", count: 52 });
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await sendText(customer, "vend-1", "m53");
  const pushed = await vendor.nextOfType("unread_messages");
  assert.equal(pushed.count, 53);
  assert.equal(pushed.messages.length, 50);
  assert.deepEqual(
    pushed.messages.map((message: { seq: number }) => message.seq),
    Array.from({ length: 50 }, (_, index) => index + 4),
  );
});

Deno.test("a vendor sends to the customer, a customer to the vendor or a member of it", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "owner-1", "owner");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  assert.equal((await sendText(customer, "vend-1", "to the vendor")).receiver_id, "vend-1");
  assert.equal((await sendText(customer, "owner-1", "to a member")).receiver_id, "owner-1");
  const fromVendor = await sendText(vendor, "cust-1", "to the customer");
  assert.equal(fromVendor.sender_id, "vend-1");
  assert.equal(fromVendor.receiver_id, "cust-1");
});

Deno.test("a receiver on the sender's own side, the sender, or a stranger is invalid_payload", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.createChat("cust-2", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await service.addVendorMember("vend-2", "agent-2", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const cases = [
    [customer, "cust-1"],
    [customer, "stranger"],
    [customer, "cust-2"],
    [customer, "agent-2"],
    [vendor, "vend-1"],
    [vendor, "agent-1"],
    [vendor, "cust-2"],
  ] as const;
  for (const [socket, receiver] of cases) {
    const error = await refused(socket, {
      action: "send_message",
      receiver_id: receiver,
      media_type: "text",
      content: "nope",
    }, "invalid_payload");
    assert.equal(error.action, "send_message");
    assert.deepEqual(error.issues.map((issue: { path: string }) => issue.path), ["receiver_id"]);
  }
  const history = await customer.request({ action: "load_latest_chat" });
  assert.equal(history.type, "ack");
  assert.deepEqual((await customer.nextOfType("latest_chat")).messages, []);
});

Deno.test("a numeric receiver_id is the user id as a string", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "2002");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const reply = await customer.request({
    action: "send_message",
    receiver_id: 2002,
    media_type: "text",
    content: "hi",
  });
  assert.equal(reply.type, "ack");
  assert.equal(reply.message.receiver_id, "2002");
});

Deno.test("SQL and markup in content are stored and returned verbatim", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const texts = [
    "'; drop table messages; --",
    "Robert'); DELETE FROM chats WHERE ('1'='1",
    "$1 $2 \\x00 %s %n {{seq}} ${content}",
    '<script>alert(1)</script> & "quotes"',
    "emoji 👋🏽 and 中文 and \u202e reversed",
  ];
  for (const text of texts) {
    const reply = await customer.request({
      action: "send_message",
      receiver_id: "vend-1",
      media_type: "text",
      content: text,
      client_id: text.slice(0, 100),
      request_id: text.slice(0, 64),
    });
    assert.equal(reply.request_id, text.slice(0, 64));
    const sent = reply.message;
    assert.equal(sent.content, text);
    assert.equal(sent.client_id, text.slice(0, 100));
    assert.equal((await vendor.nextOfType("chat_message")).message.content, text);
  }
  await using again = await cluster.openChat("vend-1", chat.id);
  const history = await again.nextOfType("latest_chat");
  assert.deepEqual(history.messages.map((message: { content: string }) => message.content), texts);
});

Deno.test("content of exactly 4000 characters is accepted, also when they are emoji", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const plain = `  ${"a".repeat(4000)}  `;
  assert.equal((await sendText(customer, "vend-1", plain)).content, "a".repeat(4000));
  const emoji = "😀".repeat(4000);
  assert.equal((await sendText(customer, "vend-1", emoji)).content, emoji);
});
