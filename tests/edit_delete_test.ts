import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "./support/service.ts";
import {
  acked,
  askUnread,
  joinAllChats,
  joinChat,
  messageWithSeq,
  refused,
  sendText,
} from "./support/steps.ts";
import type { Frame } from "./support/ws_client.ts";

const isoUtc = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

Deno.test("delete_message by the sender tells every socket with message_deleted", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using customerAll = await joinAllChats(cluster, "cust-1");
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using vendorAll = await joinAllChats(cluster, "vend-1");
  await sendText(customer, "vend-1", "keep");
  const doomed = await sendText(customer, "vend-1", "regret");

  await acked(customer, { action: "delete_message", message_id: doomed.id });
  const events = [];
  for (const socket of [customer, customerAll, vendor, vendorAll]) {
    events.push(await socket.nextOfType("message_deleted"));
  }
  const deletedAt = events[0]!.deleted_at;
  assert.match(deletedAt, isoUtc);
  for (const event of events) {
    assert.deepEqual(event, {
      type: "message_deleted",
      chat_id: chat.id,
      message_id: doomed.id,
      seq: 2,
      deleted_by: "cust-1",
      deleted_at: deletedAt,
    });
  }
});

Deno.test("a deleted message stays in history as a tombstone without content", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await sendText(customer, "vend-1", "before");
  const doomed = await sendText(customer, "vend-1", "secret");
  await sendText(customer, "vend-1", "after");
  await acked(customer, { action: "delete_message", message_id: doomed.id });

  await using vendor = await cluster.openChat("vend-1", chat.id);
  const page = await vendor.nextOfType("latest_chat");
  assert.deepEqual(
    page.messages.map((message: Frame) => [message.seq, message.content, message.deleted]),
    [[1, "before", false], [2, null, true], [3, "after", false]],
  );
  const tombstone = page.messages[1];
  assert.equal(tombstone.id, doomed.id);
  assert.equal(tombstone.media_url, null);
  assert.equal(tombstone.sender_id, "cust-1");
  assert.ok(!JSON.stringify(vendor.frames).includes("secret"), "the content never reappears");

  const unread = await vendor.nextOfType("unread_messages");
  assert.equal(unread.count, 2, "a deleted message is no longer unread");
  assert.deepEqual(unread.messages.map((message: Frame) => message.content), ["before", "after"]);
});

Deno.test("a chat whose last message was deleted lists it as a tombstone", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const doomed = await sendText(customer, "vend-1", "secret");
  await acked(customer, { action: "delete_message", message_id: doomed.id });
  await using vendorAll = await cluster.openChats("vend-1");
  const { chats } = await vendorAll.nextOfType("chats");
  assert.equal(chats[0].last_message.id, doomed.id);
  assert.equal(chats[0].last_message.deleted, true);
  assert.equal(chats[0].last_message.content, null);
  assert.equal(chats[0].unread_count, 0);
});

Deno.test("only the sender may delete a message; anyone else is forbidden", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using agent = await joinChat(cluster, "agent-1", chat.id);
  const fromCustomer = await sendText(customer, "vend-1", "customer's");
  const fromVendor = await sendText(vendor, "cust-1", "vendor's");

  await refused(vendor, { action: "delete_message", message_id: fromCustomer.id }, "forbidden");
  await refused(agent, { action: "delete_message", message_id: fromVendor.id }, "forbidden");
  await refused(customer, { action: "delete_message", message_id: fromVendor.id }, "forbidden");
  await acked(customer, { action: "load_latest_chat" });
  const page = await customer.nextOfType("latest_chat");
  assert.deepEqual(page.messages.map((message: Frame) => message.deleted), [false, false]);
});

Deno.test("edit_message by the sender tells every socket with message_edited and sets edited_at", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using customerAll = await joinAllChats(cluster, "cust-1");
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using vendorAll = await joinAllChats(cluster, "vend-1");
  const original = await sendText(customer, "vend-1", "helo");

  const ack = await acked(customer, {
    action: "edit_message",
    message_id: original.id,
    content: "  hello  ",
  });
  const edited = ack.message;
  assert.equal(edited.id, original.id);
  assert.equal(edited.seq, original.seq);
  assert.equal(edited.content, "hello");
  assert.match(edited.edited_at, isoUtc);
  assert.equal(edited.created_at, original.created_at);
  for (const socket of [customer, customerAll, vendor, vendorAll]) {
    const event = await socket.nextOfType("message_edited");
    assert.deepEqual(event, { type: "message_edited", chat_id: chat.id, message: edited });
  }

  await using again = await cluster.openChat("vend-1", chat.id);
  const [stored] = (await again.nextOfType("latest_chat")).messages;
  assert.equal(stored.content, "hello");
  assert.equal(stored.edited_at, edited.edited_at);
});

Deno.test("only the sender may edit a message; a member may not edit the vendor's", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using agent = await joinChat(cluster, "agent-1", chat.id);
  const fromCustomer = await sendText(customer, "vend-1", "customer's");
  const fromVendor = await sendText(vendor, "cust-1", "vendor's");

  const edit = (message_id: string) => ({ action: "edit_message", message_id, content: "x" });
  await refused(vendor, edit(fromCustomer.id), "forbidden");
  await refused(customer, edit(fromVendor.id), "forbidden");
  await refused(agent, edit(fromVendor.id), "forbidden");
  await acked(customer, { action: "load_latest_chat" });
  const page = await customer.nextOfType("latest_chat");
  assert.deepEqual(
    page.messages.map((message: Frame) => [message.content, message.edited_at]),
    [["customer's", null], ["vendor's", null]],
  );
});

Deno.test("a deleted message can be neither edited nor read", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const doomed = await sendText(customer, "vend-1", "gone");
  await acked(customer, { action: "delete_message", message_id: doomed.id });
  await refused(
    customer,
    { action: "edit_message", message_id: doomed.id, content: "back" },
    "not_found",
  );
  await refused(vendor, { action: "read_message", message_id: doomed.id }, "not_found");
  assert.equal((await askUnread(vendor)).count, 0);
});

Deno.test("deleting one's own message again (a retry whose ack was lost) is acknowledged and tells no one; others' deleted messages stay not_found", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const doomed = await sendText(customer, "vend-1", "gone");
  await acked(customer, { action: "delete_message", message_id: doomed.id });
  assert.equal((await vendor.nextOfType("message_deleted")).message_id, doomed.id);
  await acked(customer, { action: "delete_message", message_id: doomed.id });
  await refused(vendor, { action: "delete_message", message_id: doomed.id }, "not_found");
  // a barrier: the next message comes after anything the second deletion told
  const after = await sendText(customer, "vend-1", "still here");
  assert.deepEqual((await messageWithSeq(vendor, after.seq)).message, after);
  assert.deepEqual(vendor.pending("message_deleted"), []);
  assert.equal(customer.pending("message_deleted").length, 1);
});

Deno.test("an edit that changes nothing (a retry whose ack was lost, a save without a change) is acknowledged with the message as it is and tells no one", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const untouched = await sendText(customer, "vend-1", "as sent");
  const edited = await sendText(customer, "vend-1", "first");

  // saved as it is: not marked edited
  const same = await acked(customer, {
    action: "edit_message",
    message_id: untouched.id,
    content: "  as sent ",
  });
  assert.deepEqual(same.message, untouched);
  const once = await acked(customer, {
    action: "edit_message",
    message_id: edited.id,
    content: "second",
  });
  assert.equal((await vendor.nextOfType("message_edited")).message.content, "second");
  // the retry: the same answer, the same edited_at
  const again = await acked(customer, {
    action: "edit_message",
    message_id: edited.id,
    content: "second",
  });
  assert.deepEqual(again.message, once.message);

  const after = await sendText(customer, "vend-1", "barrier");
  await messageWithSeq(vendor, after.seq);
  assert.deepEqual(vendor.pending("message_edited"), [], "only the edit that changed the text");
  await using later = await cluster.openChat("vend-1", chat.id);
  const { messages } = await later.nextOfType("latest_chat");
  assert.deepEqual(
    messages.filter((message: Frame) => message.id !== after.id),
    [untouched, once.message],
    "as stored",
  );
});

Deno.test("a sender banned, or removed from the vendor, before their socket hears of it can neither edit nor delete", async () => {
  // no sweep during the test: the ban and the removal below are stored but never published, as
  // when their publish is lost or still on its way, so the sockets stay open
  await using cluster = await startCluster({ env: { FEED_SWEEP_SECONDS: "3600" } });
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using agent = await joinAllChats(cluster, "agent-1");
  const abuse = await sendText(customer, "vend-1", "abuse");
  const answer = await sendText(agent, "cust-1", "an answer", { chat_id: chat.id });
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql`insert into bans (user_id, moderator_id, reason) values ('cust-1', 'mod', 'abuse')`;
    await sql`delete from vendor_members where vendor_id = 'vend-1' and user_id = 'agent-1'`;
    const changes = [
      [customer, { action: "edit_message", message_id: abuse.id, content: "nothing to see" }],
      [customer, { action: "delete_message", message_id: abuse.id }],
      [agent, { action: "edit_message", chat_id: chat.id, message_id: answer.id, content: "x" }],
      [agent, { action: "delete_message", chat_id: chat.id, message_id: answer.id }],
    ] as const;
    for (const [socket, frame] of changes) await refused(socket, frame, "forbidden");
    const stored = await sql<Array<{ content: string; edited: boolean; deleted: boolean }>>`
      select content, edited_at is not null as edited, deleted_at is not null as deleted
      from messages where chat_id = ${chat.id} order by seq`;
    assert.deepEqual([...stored], [
      { content: "abuse", edited: false, deleted: false },
      { content: "an answer", edited: false, deleted: false },
    ]);
  } finally {
    await sql.end();
  }
});

Deno.test("of two edits of one message from two sockets, the later one wins, also when it brings back the text the earlier one replaces", async () => {
  // A message "A": one tab saves "B", another then "A" again (an undo) while the first is still
  // waiting on the row. The second read "A" as stored and was answered at once, changing
  // nothing, and "B" was stored after it: the text the user saved last was lost.
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using first = await joinChat(cluster, "cust-1", chat.id);
  await using second = await joinChat(cluster, "cust-1", chat.id);
  const message = await sendText(first, "vend-1", "A");
  const sql = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
  const held = Promise.withResolvers<void>();
  const locked = Promise.withResolvers<void>();
  const holding = sql.begin(async (tx) => {
    await tx`select id from messages where id = ${message.id} for update`;
    locked.resolve();
    await held.promise;
  });
  try {
    await locked.promise;
    const waiting = async (count: number) => {
      for (let tries = 0; tries < 200; tries++) {
        const [{ n }] = await sql<[{ n: number }]>`
          select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'
            -- the edit's read of the row it locks (its text is cut at 1 kB, before its update)
            and query like '%media_type = ''text''%for update%'`;
        if (n >= count) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.fail(`${count} edit(s) never waited on the row`);
    };
    const toB = first.request({ action: "edit_message", message_id: message.id, content: "B" });
    await waiting(1);
    const toA = second.request({ action: "edit_message", message_id: message.id, content: "A" });
    // the later edit waits for the row as well, or has been answered already
    await Promise.race([waiting(2), toA]);
    held.resolve();
    await holding;
    assert.equal((await toB).type, "ack");
    assert.equal((await toA).type, "ack");
    const [stored] = await sql<[{ content: string }]>`
      select content from messages where id = ${message.id}`;
    assert.equal(stored.content, "A", "the text saved last");
  } finally {
    held.resolve();
    await holding;
    await sql.end();
  }
});
