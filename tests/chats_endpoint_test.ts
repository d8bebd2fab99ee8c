import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster, type TestCluster } from "./support/service.ts";
import {
  acked,
  askUnread,
  holdAnswers,
  joinAllChats,
  joinChat,
  messageWithSeq,
  refused,
  sendText,
} from "./support/steps.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

/**
 * Fails when `list` shows a chat without a message the socket was sent before it: a client that
 * shows the list it is sent would have the message undone.
 */
function assertNoOlderThanMessagesBefore(socket: TestSocket, list: Frame): void {
  for (const frame of socket.frames.slice(0, socket.frames.indexOf(list))) {
    if (frame.type !== "chat_message") continue;
    const row = list.chats.find((candidate: Frame) => candidate.chat_id === frame.chat_id);
    assert.ok(
      (row?.last_message?.seq ?? 0) >= frame.message.seq,
      `the list sent after message ${frame.message.seq} of its chat shows it without it`,
    );
  }
}

/**
 * A chat of cust-1 with vend-1, the customer's and the vendor's sockets on it, and the vendor's
 * chats socket (all closed with the cluster).
 */
async function vendorWatching(cluster: TestCluster) {
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  return {
    chat,
    customer: await joinChat(cluster, "cust-1", chat.id),
    vendor: await joinChat(cluster, "vend-1", chat.id),
    vendorAll: await joinAllChats(cluster, "vend-1"),
  };
}

/** `list_chats`; resolves with the `chats` frame it brings. */
async function listChats(socket: TestSocket, before?: string): Promise<Frame> {
  await acked(socket, { action: "list_chats", ...(before === undefined ? {} : { before }) });
  return await socket.nextOfType("chats");
}

Deno.test("chats lists newest activity first with last_message and this user's unread_count", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const quiet = await service.createChat("cust-1", "vend-quiet");
  const older = await service.createChat("cust-1", "vend-older");
  const newer = await service.createChat("cust-1", "vend-newer");
  await service.createChat("someone-else", "vend-newer");
  await using inOlder = await joinChat(cluster, "vend-older", older.id);
  await using inNewer = await joinChat(cluster, "cust-1", newer.id);
  await sendText(inOlder, "cust-1", "from older 1");
  const olderLast = await sendText(inOlder, "cust-1", "from older 2");
  const newerLast = await sendText(inNewer, "vend-newer", "to newer");

  await using all = await cluster.openChats("cust-1");
  const frame = await all.nextOfType("chats");
  assert.equal(frame.has_more, false);
  const rows = frame.chats;
  assert.deepEqual(
    rows.map((row: Frame) => row.chat_id).toSorted(),
    [
      quiet.id,
      older.id,
      newer.id,
    ].toSorted(),
  );
  const byId = new Map<string, Frame>(rows.map((row: Frame) => [row.chat_id, row]));
  assert.deepEqual(byId.get(newer.id), {
    chat_id: newer.id,
    user_id: "cust-1",
    vendor_id: "vend-newer",
    last_message: newerLast,
    unread_count: 0,
    updated_at: newerLast.created_at,
  });
  assert.deepEqual(byId.get(older.id), {
    chat_id: older.id,
    user_id: "cust-1",
    vendor_id: "vend-older",
    last_message: olderLast,
    unread_count: 2,
    updated_at: olderLast.created_at,
  });
  const quietRow = byId.get(quiet.id)!;
  assert.equal(quietRow.last_message, null);
  assert.equal(quietRow.unread_count, 0);
  // newest activity first: a chat's activity is its last message, or its creation
  const times = rows.map((row: Frame) => Date.parse(row.updated_at));
  assert.deepEqual(times, times.toSorted((a: number, b: number) => b - a));
  assert.ok(Date.parse(quietRow.updated_at) <= Date.parse(olderLast.created_at));
  assert.ok(Date.parse(olderLast.created_at) <= Date.parse(newerLast.created_at));
  assert.equal(rows[0].chat_id, newer.id);
});

Deno.test("the vendor side sees its own unread_count, a member sees the vendor's chats", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.createChat("cust-2", "vend-2");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await sendText(customer, "vend-1", "one");
  await sendText(customer, "agent-1", "two");
  for (const userId of ["vend-1", "agent-1"]) {
    await using all = await cluster.openChats(userId);
    const { chats } = await all.nextOfType("chats");
    assert.equal(chats.length, 1, userId);
    assert.equal(chats[0].chat_id, chat.id);
    assert.equal(chats[0].unread_count, 2);
    assert.equal(chats[0].last_message.content, "two");
  }
  await using customerAll = await cluster.openChats("cust-1");
  assert.equal((await customerAll.nextOfType("chats")).chats[0].unread_count, 0);
});

Deno.test("more than 50 chats page with has_more and the before cursor, each chat once", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const created = new Set<string>();
  for (let index = 0; index < 57; index++) {
    created.add((await service.createChat("cust-1", `vend-${index}`)).id);
  }
  // activity in a few of them moves those to the front
  const active = [...created].slice(0, 3);
  for (const chatId of active) {
    await using socket = await joinChat(cluster, "cust-1", chatId);
    await sendText(socket, (await service.getChat(chatId)).vendor_id, "bump");
  }

  await using all = await cluster.openChats("cust-1");
  const pages = [await all.nextOfType("chats")];
  while (pages.at(-1)!.has_more) {
    assert.ok(pages.length < 10, "paging does not end");
    pages.push(await listChats(all, pages.at(-1)!.chats.at(-1).updated_at));
  }
  assert.ok(pages.length >= 2);
  const rows = pages.flatMap((page) => page.chats);
  const ids = rows.map((row: Frame) => row.chat_id);
  assert.equal(new Set(ids).size, ids.length, "no chat twice");
  assert.deepEqual(new Set(ids), created);
  const times = rows.map((row: Frame) => Date.parse(row.updated_at));
  assert.deepEqual(times, times.toSorted((a, b) => b - a));
  assert.deepEqual(new Set(ids.slice(0, 3)), new Set(active));
});

Deno.test("chats imported in one transaction, sharing one updated_at, page each once", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const created = new Set<string>();
  for (let index = 0; index < 54; index++) {
    created.add((await service.createChat("cust-1", `vend-${index}`)).id);
  }
  const newest = await service.createChat("cust-1", "vend-newest");
  // what a bulk import (or Django's microsecond timestamps) leaves behind
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql`update chats set updated_at = '2026-01-01T10:00:00.123456Z' where id <> ${newest.id}`;
    await sql`update chats set updated_at = '2026-01-01T10:00:00.500001Z' where id = ${newest.id}`;
  } finally {
    await sql.end();
  }

  await using all = await cluster.openChats("cust-1");
  const pages = [await all.nextOfType("chats")];
  while (pages.at(-1)!.has_more) {
    assert.ok(pages.length < 10, "paging does not end");
    const cursor = pages.at(-1)!.chats.at(-1)?.updated_at;
    assert.ok(cursor, `a page with has_more but no chats: ${JSON.stringify(pages.at(-1))}`);
    pages.push(await listChats(all, cursor));
  }
  const ids = pages.flatMap((page) => page.chats.map((row: Frame) => row.chat_id));
  assert.equal(ids[0], newest.id);
  assert.equal(new Set(ids).size, ids.length, "no chat twice");
  assert.deepEqual(new Set(ids), new Set([...created, newest.id]));
});

Deno.test("a run of more than 10,000 chats sharing one updated_at (a bulk import) pages each chat once, none left out", async () => {
  await using cluster = await startCluster();
  const count = 10_050;
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    // a vendor's chats imported in one transaction: one now() for every row
    await sql`
      insert into chats (user_id, vendor_id, created_at, updated_at)
      select 'cust-' || n, 'vend-big', '2026-01-01T10:00:00.123Z', '2026-01-01T10:00:00.123Z'
      from generate_series(1, ${count}) as n`;
  } finally {
    await sql.end();
  }

  await using all = await cluster.openChats("vend-big");
  const pages = [await all.nextOfType("chats", 30_000)];
  while (pages.at(-1)!.has_more) {
    assert.ok(pages.length < 10, "paging does not end");
    const cursor = pages.at(-1)!.chats.at(-1)?.updated_at;
    assert.ok(cursor, "a page with has_more but no chats");
    pages.push(await listChats(all, cursor));
  }
  const ids = pages.flatMap((page) => page.chats.map((row: Frame) => row.chat_id));
  assert.equal(new Set(ids).size, ids.length, "no chat twice");
  assert.equal(ids.length, count, "every chat listed");
});

Deno.test("list_chats with before returns only chats with older activity", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const first = await service.createChat("cust-1", "vend-1");
  const second = await service.createChat("cust-1", "vend-2");
  await using inFirst = await joinChat(cluster, "cust-1", first.id);
  const bump = await sendText(inFirst, "vend-1", "bump");
  await using all = await joinAllChats(cluster, "cust-1");
  const older = await listChats(all, bump.created_at);
  assert.deepEqual(older.chats.map((row: Frame) => row.chat_id), [second.id]);
  assert.equal(older.has_more, false);
  const none = await listChats(all, "2000-01-01T00:00:00.000Z");
  assert.deepEqual(none, { type: "chats", chats: [], has_more: false });
});

Deno.test("every chat action works on /v1/ws/chats/ with chat_id", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.createChat("cust-1", "vend-2");
  await using customer = await joinAllChats(cluster, "cust-1");
  await using vendor = await joinAllChats(cluster, "vend-1");
  const chat_id = chat.id;

  const sent = await sendText(customer, "vend-1", "hello", { chat_id });
  assert.equal(sent.chat_id, chat_id);
  assert.equal((await vendor.nextOfType("chat_message")).message.id, sent.id);
  assert.equal((await vendor.nextOfType("unread_messages")).count, 1);
  assert.equal((await askUnread(vendor, chat_id)).count, 1);

  await acked(vendor, { action: "typing", chat_id, is_typing: true });
  assert.equal((await customer.nextOfType("typing")).chat_id, chat_id);

  await acked(vendor, { action: "read_message", chat_id, message_id: sent.id });
  assert.equal((await customer.nextOfType("message_read")).message_id, sent.id);

  const second = await sendText(customer, "vend-1", "again", { chat_id });
  await acked(vendor, { action: "read_up_to", chat_id, seq: second.seq });
  assert.equal((await customer.nextOfType("messages_read")).count, 1);

  const edited = await acked(customer, {
    action: "edit_message",
    chat_id,
    message_id: second.id,
    content: "again, edited",
  });
  assert.equal(edited.message.content, "again, edited");
  assert.equal((await vendor.nextOfType("message_edited")).message.content, "again, edited");

  await acked(customer, { action: "delete_message", chat_id, message_id: sent.id });
  assert.equal((await vendor.nextOfType("message_deleted")).message_id, sent.id);

  await acked(vendor, { action: "load_latest_chat", chat_id });
  const page = await vendor.nextOfType("latest_chat");
  assert.deepEqual(
    page.messages.map((message: Frame) => [message.deleted, message.content, message.is_read]),
    [[true, null, true], [false, "again, edited", true]],
  );
});

Deno.test("chat and message ids are taken in frames as in the path and the admin plane: any UUID, not only RFC 4122 ones", async () => {
  await using cluster = await startCluster();
  // ids the store's uuid type holds but gen_random_uuid() never makes (version 0, variant 0),
  // as an import from another system may bring
  const chatId = "0b1c2d3e-0000-0000-0000-00000000000a";
  const messageId = "0b1c2d3e-0000-0000-0000-00000000000b";
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql`insert into chats (id, user_id, vendor_id) values (${chatId}, 'cust-1', 'vend-1')`;
    await using customer = await joinChat(cluster, "cust-1", chatId);
    const sent = await sendText(customer, "vend-1", "hello");
    await sql`update messages set id = ${messageId} where id = ${sent.id}`;

    await using vendor = await joinAllChats(cluster, "vend-1");
    await acked(vendor, { action: "load_latest_chat", chat_id: chatId });
    const page = await vendor.nextOfType("latest_chat");
    assert.deepEqual(page.messages.map((message: Frame) => message.id), [messageId]);
    await acked(vendor, { action: "read_message", chat_id: chatId, message_id: messageId });
    assert.equal((await customer.nextOfType("message_read")).message_id, messageId);
  } finally {
    await sql.end();
  }
});

Deno.test("on /v1/ws/chats/ every action but ping needs chat_id", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const sent = await sendText(customer, "vend-1", "hi");
  await using all = await joinAllChats(cluster, "vend-1");
  const frames = [
    { action: "load_latest_chat" },
    { action: "send_message", receiver_id: "cust-1", media_type: "text", content: "x" },
    { action: "read_message", message_id: sent.id },
    { action: "read_up_to", seq: 1 },
    { action: "delete_message", message_id: sent.id },
    { action: "edit_message", message_id: sent.id, content: "x" },
    { action: "unread_message" },
    { action: "typing", is_typing: true },
  ];
  for (const frame of frames) {
    const error = await refused(all, frame, "invalid_payload");
    assert.equal(error.action, frame.action);
    assert.deepEqual(error.issues, [{ path: "chat_id", message: error.issues[0].message }]);
  }
  all.send({ action: "ping" });
  await askUnread(all, chat.id);
  await acked(customer, { action: "load_latest_chat" });
  const page = await customer.nextOfType("latest_chat");
  assert.deepEqual(page.messages.map((message: Frame) => [message.content, message.is_read]), [
    ["hi", false],
  ]);
});

Deno.test("list_chats belongs to /v1/ws/chats/ and is refused on a single chat", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const error = await refused(customer, { action: "list_chats" }, "invalid_payload");
  assert.equal(error.action, "list_chats");
  // invalid_payload comes with issues (protocol.md): here the action is what does not fit
  assert.deepEqual(error.issues?.map((issue: Frame) => issue.path), ["action"]);
  assert.deepEqual(customer.pending("chats"), []);
});

Deno.test("list_chats with a before cursor outside the years 1 to 9999 (UTC) is invalid_payload naming before, never internal", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customerAll = await joinAllChats(cluster, "cust-1");
  // valid ISO-8601, yet past what the store's timestamps take once put in UTC
  for (
    const before of [
      "0000-01-01T00:00:00Z",
      "0001-01-01T00:00:00+14:00",
      "9999-12-31T23:59:59-23:59",
    ]
  ) {
    const error = await refused(customerAll, { action: "list_chats", before }, "invalid_payload");
    assert.equal(error.action, "list_chats");
    assert.deepEqual(error.issues?.map((issue: Frame) => issue.path), ["before"], before);
  }
  // the first and the last instant of that span are cursors like any other
  assert.deepEqual(await listChats(customerAll, "0001-01-01T00:00:00Z"), {
    type: "chats",
    chats: [],
    has_more: false,
  });
  const all = await listChats(customerAll, "9999-12-31T23:59:59.999Z");
  assert.deepEqual(all.chats.map((summary: Frame) => summary.chat_id), [chat.id]);
});

Deno.test("a /v1/ws/chats/ socket hears of a chat created after it connected", async () => {
  await using cluster = await startCluster();
  await using customerAll = await joinAllChats(cluster, "cust-1");
  await using vendorAll = await joinAllChats(cluster, "vend-new");
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-new");

  await using vendor = await joinChat(cluster, "vend-new", chat.id);
  const sent = await sendText(vendor, "cust-1", "welcome");
  assert.deepEqual((await customerAll.nextOfType("chat_message")).message, sent);
  assert.deepEqual((await customerAll.nextOfType("unread_messages")).messages, [sent]);
  assert.deepEqual((await vendorAll.nextOfType("chat_message")).message, sent);

  const reply = await sendText(customerAll, "vend-new", "thanks", { chat_id: chat.id });
  assert.deepEqual((await messageWithSeq(vendor, reply.seq)).message, reply);
  assert.deepEqual((await vendorAll.nextOfType("chat_message")).message, reply);
  const listed = await listChats(customerAll);
  assert.deepEqual(listed.chats.map((row: Frame) => row.chat_id), [chat.id]);
});

Deno.test("a chat created after a chats socket connected comes on a chats list pushed to its customer, vendor and members, before any message", async () => {
  await using cluster = await startCluster({ instances: 2 });
  const service = cluster.main.service.chat;
  await service.addVendorMember("vend-list", "agent-list", "agent");
  await using customerAll = await joinAllChats(cluster, "cust-list");
  await using vendorAll = await joinAllChats(cluster, "vend-list", 1);
  await using agentAll = await joinAllChats(cluster, "agent-list");
  const chat = await service.createChat("cust-list", "vend-list");

  for (const socket of [customerAll, vendorAll, agentAll]) {
    const pushed = await socket.nextOfType("chats");
    assert.deepEqual(pushed.chats.map((row: Frame) => row.chat_id), [chat.id]);
    assert.equal(pushed.chats[0].last_message, null);
    assert.equal(pushed.chats[0].unread_count, 0);
  }
  // told once, though the sweep may tell the creation again
  const later = await sendText(customerAll, "vend-list", "hello", { chat_id: chat.id });
  assert.deepEqual((await vendorAll.nextOfType("chat_message")).message, later);
  assert.equal(vendorAll.frames.filter((frame) => frame.type === "chats").length, 2);
});

Deno.test("chats created one after another for a vendor (an import) share one chat list read per chats socket", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  await using vendorAll = await joinAllChats(cluster, "vend-import");
  const listChats = service.listChats;
  let lists = 0;
  Object.assign(service, {
    listChats: (...args: Parameters<typeof listChats>) => {
      lists++;
      return listChats.apply(service, args);
    },
  });
  // one after another, as an import calls CreateChat
  const created = [];
  const began = performance.now();
  for (let n = 0; n < 30; n++) {
    created.push(await service.createChat(`cust-import-${n}`, "vend-import"));
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const creating = performance.now() - began;
  const pushed = await vendorAll.next(
    (frame) => frame.type === "chats" && frame.chats.length === created.length,
    "a chats list with every chat created",
  );
  assert.deepEqual(
    pushed.chats.map((row: Frame) => row.chat_id).sort(),
    created.map((chat) => chat.id).sort(),
  );
  // one read per NEW_CHATS_LIST_DELAY_MS (500) that the creations took, and one after them: a
  // loaded machine creates them more slowly
  const allowed = Math.ceil(creating / 500) + 1;
  assert.ok(
    lists <= allowed,
    `${lists} chat list reads for 30 chats created in a row over ${creating.toFixed(0)} ms`,
  );
});

Deno.test("a chat list pushed for a new chat is not older than the messages the socket was sent before it", async () => {
  await using cluster = await startCluster({ nats: false });
  const service = cluster.main.service.chat;
  const busy = await service.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", busy.id);
  await using vendorAll = await joinAllChats(cluster, "vend-1");
  // the list pushed for the next new chat is read, then held until a message was sent
  const list = holdAnswers(service, "listChats");
  await service.createChat("cust-2", "vend-1");
  await list.read;
  const message = await sendText(customer, "vend-1", "while the list is read");
  // the message's event reaches the chats socket (in-process bus) while its list is on its way
  await new Promise((resolve) => setTimeout(resolve, 200));
  list.release();
  const pushed = await vendorAll.nextOfType("chats");
  assert.equal((await vendorAll.nextOfType("chat_message")).message.id, message.id);
  assertNoOlderThanMessagesBefore(vendorAll, pushed);
});

Deno.test("a vendor member's /v1/ws/chats/ socket hears of the vendor's new chats", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using agentAll = await joinAllChats(cluster, "agent-1");
  const chat = await service.createChat("cust-new", "vend-1");

  await using customer = await joinChat(cluster, "cust-new", chat.id);
  const sent = await sendText(customer, "vend-1", "is anyone there?");
  assert.deepEqual((await agentAll.nextOfType("chat_message")).message, sent);
  const unread = await agentAll.nextOfType("unread_messages");
  assert.equal(unread.chat_id, chat.id);
  assert.equal(unread.count, 1);

  const reply = await sendText(agentAll, "cust-new", "yes", { chat_id: chat.id });
  assert.equal(reply.sender_id, "agent-1");
  assert.deepEqual((await messageWithSeq(customer, reply.seq)).message, reply);
});

Deno.test("a message sent the instant a chat is created reaches an open chats socket once", async () => {
  await using cluster = await startCluster();
  await using watcher = await cluster.openChats("quick-vendor");
  await watcher.nextOfType("chats");
  const { chat: service } = cluster.main.service;
  const chat = await service.createChat("quick-buyer", "quick-vendor");
  // no await between creation and the sends: the socket is still taking the chat in
  const membership = { chat, side: "customer" as const };
  const actor = { user_id: "quick-buyer", membership };
  const input = { receiver_id: "quick-vendor", media_type: "text" as const, media: null };
  await Promise.all([
    service.sendMessage(actor, { ...input, content: "one", client_id: "q1" }),
    service.sendMessage(actor, { ...input, content: "two", client_id: "q2" }),
  ]);
  const first = await watcher.nextOfType("chat_message");
  const second = await watcher.nextOfType("chat_message");
  assert.deepEqual([first.message.seq, second.message.seq], [1, 2]);
  // a barrier: a later message arrives next, so neither of the first two came twice
  await service.sendMessage(actor, { ...input, content: "three", client_id: "q3" });
  assert.equal((await watcher.nextOfType("chat_message")).message.seq, 3);
});

Deno.test("a list_chats answer is not older than the messages the socket was sent before it", async () => {
  await using cluster = await startCluster({ nats: false });
  const service = cluster.main.service.chat;
  const { customer, vendor, vendorAll } = await vendorWatching(cluster);
  // the answer to the next list_chats is read, then held until a message was sent
  const list = holdAnswers(service, "listChatsAsked");
  vendorAll.send({ action: "list_chats", request_id: "list" });
  await list.read;
  const message = await sendText(customer, "vend-1", "while the list is read");
  // the vendor's other socket on the instance has it: the event was handed to the chats socket
  // too (in-process bus), while its list is on its way
  await messageWithSeq(vendor, message.seq);
  list.release();
  await vendorAll.next((frame) => frame.request_id === "list", "the ack of list_chats");
  const answer = await vendorAll.nextOfType("chats");
  assert.equal((await vendorAll.nextOfType("chat_message")).message.id, message.id);
  assertNoOlderThanMessagesBefore(vendorAll, answer);
});

Deno.test("an unread_message answer is not older than the unread push the socket was sent before it", async () => {
  await using cluster = await startCluster({ nats: false });
  const service = cluster.main.service.chat;
  const { chat, customer, vendor, vendorAll } = await vendorWatching(cluster);
  await sendText(customer, "vend-1", "first");
  assert.equal((await vendorAll.nextOfType("unread_messages")).count, 1);
  assert.equal((await vendor.nextOfType("unread_messages")).count, 1);
  // the answer to the next unread_message is read, then held until a message was sent
  const unread = holdAnswers(service, "unreadMessage");
  vendorAll.send({ action: "unread_message", chat_id: chat.id, request_id: "unread" });
  await unread.read;
  await sendText(customer, "vend-1", "while the count is read");
  // the vendor's other socket on the instance has its push: the chats socket was handed it too
  assert.equal((await vendor.nextOfType("unread_messages")).count, 2);
  unread.release();
  await vendorAll.next((frame) => frame.request_id === "unread", "the ack of unread_message");
  // a client shows the count it was sent last: an answer read before the push, sent after it,
  // would show one unread message of two until the next message
  const counts = vendorAll.frames
    .filter((frame) => frame.type === "unread_messages")
    .map((frame) => frame.count);
  assert.equal(counts.at(-1), 2, `unread counts in the order sent: ${counts}`);
});

Deno.test("a load_latest_chat answer does not bring back the content of a message deleted before it was sent", async () => {
  await using cluster = await startCluster({ nats: false });
  const service = cluster.main.service.chat;
  const { chat, customer, vendor, vendorAll } = await vendorWatching(cluster);
  const sent = await sendText(customer, "vend-1", "sent by mistake");
  await vendorAll.nextOfType("chat_message");
  // the answer to the next load_latest_chat is read, then held until the message was deleted
  const history = holdAnswers(service, "loadLatestChat");
  vendorAll.send({ action: "load_latest_chat", chat_id: chat.id, request_id: "page" });
  await history.read;
  await acked(customer, { action: "delete_message", message_id: sent.id });
  // the vendor's other socket on the instance has the deletion: the chats socket was handed it
  assert.equal((await vendor.nextOfType("message_deleted")).message_id, sent.id);
  history.release();
  await vendorAll.next((frame) => frame.request_id === "page", "the ack of load_latest_chat");
  // a client keeps a message as the frame it was sent last shows it: a page read before the
  // deletion, sent after it, would show the message's content again
  const shown = vendorAll.frames.flatMap((frame) =>
    frame.type === "message_deleted"
      ? [`deleted`]
      : frame.type === "latest_chat"
      ? frame.messages.map((message: Frame) => message.deleted ? "deleted" : message.content)
      : []
  );
  assert.equal(shown.at(-1), "deleted", `the message as sent, in order: ${shown}`);
});
