import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "./support/service.ts";
import {
  acked,
  agentWatching,
  askUnread,
  framesBetween,
  joinAllChats,
  joinChat,
  messageWithSeq,
  refused,
  sendText,
} from "./support/steps.ts";
import type { Frame } from "./support/ws_client.ts";

const isoUtc = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

Deno.test("read_message by the receiver tells every socket of both sides with message_read", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using customerAll = await joinAllChats(cluster, "cust-1");
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using vendorAll = await joinAllChats(cluster, "vend-1");
  const sent = await sendText(customer, "vend-1", "read me");

  await acked(vendor, { action: "read_message", message_id: sent.id });
  const events = [];
  for (const socket of [customer, customerAll, vendor, vendorAll]) {
    events.push(await socket.nextOfType("message_read"));
  }
  const readAt = events[0]!.read_at;
  assert.match(readAt, isoUtc);
  for (const event of events) {
    assert.deepEqual(event, {
      type: "message_read",
      chat_id: chat.id,
      message_id: sent.id,
      seq: 1,
      reader_id: "vend-1",
      read_at: readAt,
    });
  }

  await acked(customer, { action: "load_latest_chat" });
  const [stored] = (await customer.nextOfType("latest_chat")).messages;
  assert.equal(stored.is_read, true);
  assert.equal(stored.read_at, readAt);
  assert.deepEqual(await askUnread(vendor), {
    type: "unread_messages",
    chat_id: chat.id,
    count: 0,
    messages: [],
  });
});

Deno.test("a message_id given in upper case is marked read and broadcast with its stored id", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const sent = await sendText(customer, "vend-1", "read me, shouting");

  await acked(vendor, { action: "read_message", message_id: sent.id.toUpperCase() });
  for (const socket of [customer, vendor]) {
    const event = await socket.nextOfType("message_read");
    assert.equal(event.message_id, sent.id);
  }
});

Deno.test("the sender's side may not mark its own message read: forbidden", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using agent = await joinChat(cluster, "agent-1", chat.id);
  const fromCustomer = await sendText(customer, "vend-1", "mine");
  const fromVendor = await sendText(vendor, "cust-1", "the vendor's");

  const error = await refused(
    customer,
    { action: "read_message", message_id: fromCustomer.id, request_id: "own-read" },
    "forbidden",
  );
  assert.equal(error.request_id, "own-read");
  assert.equal(error.action, "read_message");
  await refused(agent, { action: "read_message", message_id: fromVendor.id }, "forbidden");
  assert.equal((await askUnread(vendor)).count, 1);
  assert.equal((await askUnread(customer)).count, 1);
});

Deno.test("marking an already read message succeeds and broadcasts nothing", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const sent = await sendText(customer, "vend-1", "read twice");
  await acked(vendor, { action: "read_message", message_id: sent.id });
  await customer.nextOfType("message_read");
  const mark = customer.frames.length;

  await acked(vendor, { action: "read_message", message_id: sent.id });
  const barrier = await sendText(vendor, "cust-1", "barrier");
  const seen = framesBetween(customer, mark, await messageWithSeq(customer, barrier.seq));
  assert.deepEqual(seen, []);
});

Deno.test("a vendor member reads a message addressed to the vendor account", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using agent = await joinChat(cluster, "agent-1", chat.id);
  const sent = await sendText(customer, "vend-1", "for the vendor");
  await acked(agent, { action: "read_message", message_id: sent.id });
  for (const socket of [customer, vendor, agent]) {
    const event = await socket.nextOfType("message_read");
    assert.equal(event.reader_id, "agent-1");
    assert.equal(event.message_id, sent.id);
  }
  assert.equal((await askUnread(vendor)).count, 0);
});

Deno.test("read_up_to marks only messages addressed to the reader's side and reports the count", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using customerAll = await joinAllChats(cluster, "cust-1");
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await sendText(customer, "vend-1", "c1");
  await sendText(vendor, "cust-1", "v2");
  await sendText(customer, "vend-1", "c3");
  await sendText(vendor, "cust-1", "v4");
  await sendText(customer, "vend-1", "c5");
  await sendText(vendor, "cust-1", "v6");

  await acked(customer, { action: "read_up_to", seq: 5 });
  // up to v4, the newest it marked: c5 is the customer's own
  for (const socket of [customer, customerAll, vendor]) {
    const event = await socket.nextOfType("messages_read");
    assert.match(event.read_at, isoUtc);
    assert.deepEqual(event, {
      type: "messages_read",
      chat_id: chat.id,
      reader_id: "cust-1",
      up_to_seq: 4,
      count: 2,
      read_at: event.read_at,
    });
  }

  await acked(customer, { action: "load_latest_chat" });
  const page = await customer.nextOfType("latest_chat");
  assert.deepEqual(
    page.messages.map((message: Frame) => [message.content, message.is_read]),
    [["c1", false], ["v2", true], ["c3", false], ["v4", true], ["c5", false], ["v6", false]],
  );
  const unread = await askUnread(customer);
  assert.equal(unread.count, 1);
  assert.deepEqual(unread.messages.map((message: Frame) => message.content), ["v6"]);
  assert.equal((await askUnread(vendor)).count, 3);
});

Deno.test('a "mark all read" asking past any seq a chat can have (Number.MAX_SAFE_INTEGER) marks everything, and history asks past the end alike', async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await sendText(customer, "vend-1", "c1");
  await sendText(customer, "vend-1", "c2");

  await acked(vendor, { action: "read_up_to", seq: Number.MAX_SAFE_INTEGER });
  const event = await customer.nextOfType("messages_read");
  assert.deepEqual([event.up_to_seq, event.count], [2, 2]);

  await acked(vendor, { action: "load_latest_chat", before_seq: Number.MAX_SAFE_INTEGER });
  const page = await vendor.nextOfType("latest_chat");
  assert.deepEqual(page.messages.map((message: Frame) => message.content), ["c1", "c2"]);
  await acked(vendor, { action: "load_latest_chat", after_seq: Number.MAX_SAFE_INTEGER });
  assert.deepEqual((await vendor.nextOfType("latest_chat")).messages, []);
  // past what a JSON number holds exactly: not an integer anyone can mean
  await refused(vendor, { action: "read_up_to", seq: 2 ** 53 }, "invalid_payload");
});

Deno.test("read_up_to on /v1/ws/chats/ by a vendor member counts what it marked", async () => {
  await using cluster = await startCluster();
  const { chat, customer, agentAll } = await agentWatching(cluster);
  for (let index = 1; index <= 4; index++) await sendText(customer, "vend-1", `c${index}`);
  await acked(agentAll, { action: "read_up_to", chat_id: chat.id, seq: 3 });
  const event = await customer.nextOfType("messages_read");
  assert.equal(event.reader_id, "agent-1");
  assert.equal(event.count, 3);
  assert.equal((await askUnread(agentAll, chat.id)).count, 1);
});

Deno.test("unread_message answers only the asking socket", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using vendorAgain = await joinChat(cluster, "vend-1", chat.id);
  await sendText(customer, "vend-1", "one");
  await vendorAgain.nextOfType("unread_messages");
  const mark = vendorAgain.frames.length;

  const unread = await askUnread(vendor);
  assert.equal(unread.count, 1);
  const barrier = await sendText(customer, "vend-1", "barrier");
  const seen = framesBetween(vendorAgain, mark, await messageWithSeq(vendorAgain, barrier.seq));
  assert.deepEqual(seen, []);
});

Deno.test("a reader banned, or removed from the vendor, before their socket hears of it marks nothing read: forbidden, and the side's unread stays", async () => {
  // no sweep during the test: the ban and the removal below are stored but never published, as
  // when their publish is lost or still on its way, so the sockets stay open
  await using cluster = await startCluster({ env: { FEED_SWEEP_SECONDS: "3600" } });
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using agent = await joinAllChats(cluster, "agent-1");
  const question = await sendText(customer, "vend-1", "a question");
  await sendText(customer, "vend-1", "another");
  const answer = await sendText(vendor, "cust-1", "an answer");
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql`delete from vendor_members where vendor_id = 'vend-1' and user_id = 'agent-1'`;
    await sql`insert into bans (user_id, moderator_id, reason) values ('cust-1', 'mod', 'abuse')`;
    const marks = [
      [agent, { action: "read_message", chat_id: chat.id, message_id: question.id }],
      [agent, { action: "read_up_to", chat_id: chat.id, seq: 2 }],
      [customer, { action: "read_message", message_id: answer.id }],
      [customer, { action: "read_up_to", seq: 3 }],
    ] as const;
    for (const [socket, frame] of marks) await refused(socket, frame, "forbidden");
    const stored = await sql<Array<{ is_read: boolean }>>`
      select is_read from messages where chat_id = ${chat.id} order by seq`;
    assert.deepEqual(stored.map((row) => row.is_read), [false, false, false]);
    assert.equal((await askUnread(vendor)).count, 2);
    const [counters] = await sql`
      select customer_unread, vendor_unread from chats where id = ${chat.id}`;
    assert.deepEqual({ ...counters }, { customer_unread: 1, vendor_unread: 2 });
  } finally {
    await sql.end();
  }
});
