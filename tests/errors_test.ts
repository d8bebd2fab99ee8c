import assert from "node:assert/strict";
import { fixture } from "./support/media.ts";
import { startCluster } from "./support/service.ts";
import {
  acked,
  askUnread,
  joinAllChats,
  joinChat,
  messageWithSeq,
  refused,
  sendText,
  stillServes,
  unknownId,
} from "./support/steps.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

/** Sends raw text or bytes; resolves with the error frame it causes. */
async function errorFor(socket: TestSocket, raw: string | Uint8Array): Promise<Frame> {
  const mark = socket.frames.length;
  socket.send(raw);
  const error = await socket.next(
    (frame) => frame.type === "error" && socket.frames.indexOf(frame) >= mark,
    `an error for ${String(raw).slice(0, 40)}`,
  );
  return error;
}

const text = (fields: Frame) => ({
  action: "send_message",
  receiver_id: "vend-1",
  media_type: "text",
  ...fields,
});

Deno.test("text that is not JSON is invalid_json, and the socket keeps working", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  for (const raw of ["{", "not json", '{"action": "ping",}', ""]) {
    const error = await errorFor(customer, raw);
    assert.equal(error.code, "invalid_json", raw);
    assert.equal(typeof error.message, "string");
    await stillServes(customer);
  }
});

Deno.test("a binary frame, or JSON that is not an object, is invalid_frame", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using all = await joinAllChats(cluster, "cust-1");
  for (const [socket, chatId] of [[customer, undefined], [all, chat.id]] as const) {
    const binary = new TextEncoder().encode(JSON.stringify({ action: "ping" }));
    assert.equal((await errorFor(socket, binary)).code, "invalid_frame");
    await stillServes(socket, chatId);
    for (const raw of ["[1]", '"x"', "null", "42", "true", "[]"]) {
      assert.equal((await errorFor(socket, raw)).code, "invalid_frame", raw);
      await stillServes(socket, chatId);
    }
  }
});

Deno.test("an unknown action is unknown_action with the request_id echoed", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using all = await joinAllChats(cluster, "cust-1");
  for (const socket of [customer, all]) {
    for (const action of ["fly", "SEND_MESSAGE", "toString", "__proto__", ""]) {
      const error = await refused(socket, { action, request_id: `q-${action}` }, "unknown_action");
      assert.equal(error.request_id, `q-${action}`);
    }
    await stillServes(socket, socket === all ? chat.id : undefined);
  }
});

Deno.test("a frame without a string action is invalid_payload naming action", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  for (const frame of [{}, { action: 7 }, { action: null }, { action: ["ping"] }]) {
    const error = await refused(customer, { ...frame, request_id: "no-action" }, "invalid_payload");
    assert.equal(error.request_id, "no-action");
    assert.deepEqual(error.issues.map((issue: Frame) => issue.path), ["action"]);
    await stillServes(customer);
  }
});

Deno.test("send_message with bad fields is invalid_payload with issues, and nothing is stored", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const cases: Array<[string, Frame, string]> = [
    ["empty content", text({ content: "" }), "content"],
    ["content empty after trim", text({ content: " \n\t " }), "content"],
    ["content of 4001 characters", text({ content: "a".repeat(4001) }), "content"],
    ["4001 emoji", text({ content: "😀".repeat(4001) }), "content"],
    ["content not a string", text({ content: 5 }), "content"],
    ["no content", text({}), "content"],
    ["content and image", text({ content: "hi", image: "iVBORw0KGgo=" }), "content"],
    ["image for a text message", text({ image: "iVBORw0KGgo=" }), "content"],
    ["no receiver_id", { action: "send_message", media_type: "text", content: "x" }, "receiver_id"],
    ["empty receiver_id", text({ receiver_id: "", content: "x" }), "receiver_id"],
    [
      "no media_type",
      { action: "send_message", receiver_id: "vend-1", content: "x" },
      "media_type",
    ],
    ["unknown media_type", text({ media_type: "sticker", content: "x" }), "media_type"],
    ["empty client_id", text({ content: "x", client_id: "" }), "client_id"],
    // a lone surrogate has no UTF-8: stored, it would become U+FFFD
    ["client_id with a lone surrogate", text({ content: "x", client_id: "c-\ud800" }), "client_id"],
    [
      "receiver_id with a lone surrogate",
      text({ receiver_id: "vend-1\udc00", content: "x" }),
      "receiver_id",
    ],
    ["content with a lone surrogate", text({ content: "cut in half \ud83d" }), "content"],
  ];
  for (const [what, frame, path] of cases) {
    const error = await refused(customer, { ...frame, request_id: "bad" }, "invalid_payload");
    assert.equal(error.request_id, "bad", what);
    assert.equal(error.action, "send_message", what);
    assert.ok(Array.isArray(error.issues) && error.issues.length > 0, what);
    assert.ok(
      error.issues.some((issue: Frame) => issue.path === path && typeof issue.message === "string"),
      `${what}: ${JSON.stringify(error.issues)}`,
    );
  }
  await acked(customer, { action: "load_latest_chat" });
  assert.deepEqual((await customer.nextOfType("latest_chat")).messages, []);
});

Deno.test("other actions with bad fields are invalid_payload with issues", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const sent = await sendText(customer, "vend-1", "hello");
  const cases: Array<[Frame, string]> = [
    [{ action: "load_latest_chat", limit: 0 }, "limit"],
    [{ action: "load_latest_chat", limit: 101 }, "limit"],
    [{ action: "load_latest_chat", limit: 2.5 }, "limit"],
    [{ action: "load_latest_chat", limit: "10" }, "limit"],
    [{ action: "load_latest_chat", before_seq: 0 }, "before_seq"],
    [{ action: "load_latest_chat", before_seq: "3" }, "before_seq"],
    [{ action: "load_latest_chat", after_seq: -1 }, "after_seq"],
    [{ action: "read_message" }, "message_id"],
    [{ action: "read_message", message_id: "not-a-uuid" }, "message_id"],
    [{ action: "read_message", message_id: 1 }, "message_id"],
    [{ action: "read_up_to" }, "seq"],
    [{ action: "read_up_to", seq: "1" }, "seq"],
    [{ action: "read_up_to", seq: -1 }, "seq"],
    [{ action: "delete_message" }, "message_id"],
    [{ action: "edit_message", content: "x" }, "message_id"],
    [{ action: "edit_message", message_id: sent.id }, "content"],
    [{ action: "edit_message", message_id: sent.id, content: "   " }, "content"],
    [{ action: "edit_message", message_id: sent.id, content: "a".repeat(4001) }, "content"],
    [{ action: "edit_message", message_id: sent.id, content: "lone \udc00 low" }, "content"],
    [{ action: "typing" }, "is_typing"],
    [{ action: "typing", is_typing: "yes" }, "is_typing"],
  ];
  for (const [frame, path] of cases) {
    const error = await refused(customer, frame, "invalid_payload");
    assert.equal(error.action, frame.action);
    assert.ok(
      error.issues.some((issue: Frame) => issue.path === path),
      `${JSON.stringify(frame).slice(0, 80)}: ${JSON.stringify(error.issues)}`,
    );
  }
  await acked(customer, { action: "load_latest_chat" });
  const [message] = (await customer.nextOfType("latest_chat")).messages;
  assert.deepEqual([message.content, message.is_read, message.deleted], ["hello", false, false]);
});

Deno.test("a request_id longer than 64 characters is refused and not echoed", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const mark = customer.frames.length;
  customer.send({ action: "unread_message", request_id: "x".repeat(65) });
  const error = await customer.next(
    (frame) => frame.type === "error" && customer.frames.indexOf(frame) >= mark,
    "the error",
  );
  assert.equal(error.code, "invalid_payload");
  assert.equal(error.request_id, undefined);
  const longest = "y".repeat(64);
  assert.equal(
    (await acked(customer, { action: "unread_message", request_id: longest })).request_id,
    longest,
  );
});

Deno.test("unknown fields are ignored", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const sent = await sendText(customer, "vend-1", "hi", { mood: "happy", nested: { a: [1] } });
  assert.equal(sent.content, "hi");
  assert.equal("mood" in sent, false);
});

Deno.test("an unknown message id is not_found with request_id and action echoed", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const frames = [
    [vendor, { action: "read_message", message_id: unknownId() }],
    [customer, { action: "delete_message", message_id: unknownId() }],
    [customer, { action: "edit_message", message_id: unknownId(), content: "x" }],
  ] as const;
  for (const [socket, frame] of frames) {
    const error = await refused(socket, { ...frame, request_id: "nf-1" }, "not_found");
    assert.equal(error.request_id, "nf-1");
    assert.equal(error.action, frame.action);
    assert.equal(typeof error.message, "string");
    await stillServes(socket);
  }
});

Deno.test("an action the user may not take is forbidden, and the socket keeps working", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const sent = await sendText(customer, "vend-1", "mine");
  const frames = [
    [customer, { action: "read_message", message_id: sent.id }],
    [vendor, { action: "delete_message", message_id: sent.id }],
    [vendor, { action: "edit_message", message_id: sent.id, content: "theirs" }],
  ] as const;
  for (const [socket, frame] of frames) {
    const error = await refused(socket, { ...frame, request_id: "fb-1" }, "forbidden");
    assert.equal(error.request_id, "fb-1");
    assert.equal(error.action, frame.action);
    await stillServes(socket);
  }
  const reply = await sendText(vendor, "cust-1", "still talking");
  assert.equal(reply.seq, 2);
});

Deno.test("an error without a request_id carries none, and errors never close the socket", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const mark = customer.frames.length;
  customer.send({ action: "read_message", message_id: unknownId() });
  customer.send("nope");
  customer.send({ action: "jump" });
  customer.send(text({ content: "" }));
  const unread = await askUnread(customer);
  assert.equal(unread.count, 0);
  const errors = customer.frames.slice(mark).filter((frame) => frame.type === "error");
  assert.deepEqual(errors.map((error) => error.code).toSorted(), [
    "invalid_json",
    "invalid_payload",
    "not_found",
    "unknown_action",
  ]);
  for (const error of errors) assert.equal("request_id" in error, false);
});

Deno.test("a field given as null counts as absent, as the Django service read fields and as clients writing every field of their model send an unset one", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const unset = { image: null, audio: null, video: null, media_id: null, client_id: null };
  const sent = await acked(customer, text({ content: "hello", ...unset, request_id: "t" }));
  assert.deepEqual([sent.message.content, sent.message.client_id], ["hello", null]);
  const png = await fixture("image.png");
  const image = await acked(customer, {
    action: "send_message",
    receiver_id: "vend-1",
    media_type: "image",
    content: null,
    image: png.toBase64(),
    audio: null,
    video: null,
    media_id: null,
    request_id: "i",
  });
  assert.equal(image.message.media_type, "image");
  assert.equal(typeof image.message.media_url, "string");
  const page = await acked(customer, {
    action: "load_latest_chat",
    limit: null,
    before_seq: null,
    after_seq: null,
    chat_id: null,
    request_id: "l",
  });
  assert.equal(page.action, "load_latest_chat");
  const latest = await customer.nextOfType("latest_chat");
  assert.deepEqual(latest.messages.map((message: Frame) => message.seq), [1, 2]);
  // a required field given as null is missing, and named
  const error = await refused(
    customer,
    { action: "read_message", message_id: null, request_id: "r" },
    "invalid_payload",
  );
  assert.deepEqual(error.issues.map((issue: Frame) => issue.path), ["message_id"]);
  // with no request_id (null): no ack, and the message is stored and told all the same
  customer.send(text({ content: "no ack asked", request_id: null }));
  assert.equal((await messageWithSeq(customer, 3)).message.content, "no ack asked");
  await using vendor = await joinAllChats(cluster, "vend-1");
  await acked(vendor, { action: "list_chats", before: null, request_id: "c" });
  const chats = await vendor.nextOfType("chats");
  assert.deepEqual(chats.chats.map((row: Frame) => row.last_message?.seq), [3]);
});
