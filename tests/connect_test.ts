import assert from "node:assert/strict";
import { configureLogging } from "../observability/log.ts";
import { startCluster } from "./support/service.ts";
import { joinChat, seedMessages, sendText } from "./support/steps.ts";
import { TestSocket } from "./support/ws_client.ts";

Deno.test("connecting to a chat with history sends the newest page oldest first, then the unread", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await seedMessages(cluster, chat.id, {
    from: "cust-1",
    to: "vend-1",
    count: 53,
    text: (n) => `message ${n}`,
  });

  await using vendor = await cluster.openChat("vend-1", chat.id);
  const latest = await vendor.next(() => true, "the first frame");
  assert.equal(latest.type, "latest_chat");
  assert.equal(latest.chat_id, chat.id);
  assert.equal(latest.has_more, true);
  assert.deepEqual(
    latest.messages.map((message: { seq: number }) => message.seq),
    Array.from({ length: 50 }, (_, index) => index + 4),
  );
  assert.equal(latest.messages.at(-1).content, "message 53");
  const unread = await vendor.next(() => true, "the second frame");
  assert.equal(unread.type, "unread_messages");
  assert.equal(unread.chat_id, chat.id);
  assert.equal(unread.count, 53);
  assert.deepEqual(
    unread.messages.map((message: { seq: number }) => message.seq),
    Array.from({ length: 50 }, (_, index) => index + 4),
  );
});

Deno.test("the sender's side connects with nothing unread for its own messages", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  {
    await using customer = await joinChat(cluster, "cust-1", chat.id);
    await sendText(customer, "vend-1", "hello");
  }
  await using customer = await cluster.openChat("cust-1", chat.id);
  const latest = await customer.nextOfType("latest_chat");
  assert.deepEqual(latest.messages.map((message: { content: string }) => message.content), [
    "hello",
  ]);
  assert.equal(latest.has_more, false);
  const unread = await customer.nextOfType("unread_messages");
  assert.deepEqual(unread, { type: "unread_messages", chat_id: chat.id, count: 0, messages: [] });
});

Deno.test("the chat path works without its trailing slash and with the token in a header", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using socket = await TestSocket.open(`${cluster.main.wsUrl}/v1/ws/chat/${chat.id}`, {
    token: await cluster.token("cust-1"),
    header: true,
  });
  const latest = await socket.nextOfType("latest_chat");
  assert.equal(latest.chat_id, chat.id);
  await socket.nextOfType("unread_messages");
});

Deno.test("the chats path works without its trailing slash and sends chats first", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using socket = await TestSocket.open(`${cluster.main.wsUrl}/v1/ws/chats`, {
    token: await cluster.token("cust-1"),
  });
  const first = await socket.next(() => true, "the first frame");
  assert.equal(first.type, "chats");
  assert.equal(first.has_more, false);
  const updatedAt = first.chats[0].updated_at;
  assert.ok(!Number.isNaN(Date.parse(updatedAt)));
  assert.deepEqual(first.chats, [{
    chat_id: chat.id,
    user_id: "cust-1",
    vendor_id: "vend-1",
    last_message: null,
    unread_count: 0,
    updated_at: updatedAt,
  }]);
});

Deno.test("a user with no chats gets an empty chats frame", async () => {
  await using cluster = await startCluster();
  await using socket = await cluster.openChats("nobody-yet");
  const chats = await socket.nextOfType("chats");
  assert.deepEqual(chats, { type: "chats", chats: [], has_more: false });
});

Deno.test("a frame sent the moment the socket opens is answered after the first frames", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("eager", "shop");
  await using socket = await TestSocket.open(`${cluster.main.wsUrl}/v1/ws/chat/${chat.id}/`, {
    token: await cluster.token("eager"),
  });
  socket.send({
    action: "send_message",
    request_id: "first",
    receiver_id: "shop",
    media_type: "text",
    content: "hi",
  });
  const ack = await socket.next((frame) => frame.request_id === "first", "the ack");
  assert.equal(ack.type, "ack");
  const order = socket.frames.map((frame) => frame.type);
  assert.ok(order.indexOf("latest_chat") < order.indexOf("ack"), order.join(","));
});

Deno.test("frames the server cannot read, sent the moment the socket opens, are answered after the first frames and in order with the rest", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("eager", "shop");
  await using socket = await TestSocket.open(`${cluster.main.wsUrl}/v1/ws/chat/${chat.id}/`, {
    token: await cluster.token("eager"),
  });
  socket.send({
    action: "send_message",
    request_id: "first",
    receiver_id: "shop",
    media_type: "text",
    content: "hi",
  });
  socket.send("not json");
  socket.send({ action: "send_message", request_id: "second", receiver_id: "shop" });
  await socket.next((frame) => frame.request_id === "second", "the second's error");
  const order = socket.frames.map((frame) => frame.request_id ?? frame.code ?? frame.type);
  const answers = order.filter((entry) => ["first", "invalid_json", "second"].includes(entry));
  assert.deepEqual(answers, ["first", "invalid_json", "second"], order.join(","));
  assert.equal(order[0], "latest_chat", order.join(","));
});

Deno.test("an upgrade without the handshake's headers is answered 400, with no error logged", async () => {
  const logged: string[] = [];
  const decoder = new TextDecoder();
  await using _logging = await configureLogging("warning", {
    write: (bytes) => logged.push(decoder.decode(bytes)),
  });
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  const token = await cluster.token("cust-1");
  const key = "dGhlIHNhbXBsZSBub25jZQ==";
  const malformed = [
    { upgrade: "websocket" },
    { upgrade: "websocket", connection: "Upgrade" },
    { upgrade: "websocket", "sec-websocket-key": key },
  ];
  for (const path of [`/v1/ws/chat/${chat.id}/`, "/v1/ws/chats/"]) {
    for (const headers of malformed) {
      const response = await fetch(`${cluster.main.httpUrl}${path}?token=${token}`, { headers });
      const label = `${path} with ${Object.keys(headers).join(", ")}`;
      assert.equal(response.status, 400, label);
      assert.match(await response.text(), /^malformed WebSocket upgrade: .*header/, label);
    }
  }
  assert.deepEqual(logged, []);
});
