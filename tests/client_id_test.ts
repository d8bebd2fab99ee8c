import assert from "node:assert/strict";
import postgres from "postgres";
import { fixture, stored } from "./support/media.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { within } from "./support/wait.ts";
import { waitingForLock } from "./support/database.ts";
import type { Frame } from "./support/ws_client.ts";
import { writerLaneOf } from "../db/writer_lanes.ts";
import {
  acked,
  framesBetween,
  joinAllChats,
  joinChat,
  messageWithSeq,
  refused,
  sendText,
} from "./support/steps.ts";

Deno.test("the same client_id twice acks the same message twice and broadcasts it once", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using vendorAll = await joinAllChats(cluster, "vend-1");
  const vendorMark = vendor.frames.length;
  const vendorAllMark = vendorAll.frames.length;

  const first = await sendText(customer, "vend-1", "pay now", { client_id: "retry-1" });
  const second = await sendText(customer, "vend-1", "pay now", { client_id: "retry-1" });
  assert.deepEqual(second, first);
  assert.equal(first.client_id, "retry-1");

  // barrier: the next message must be the next chat_message seen, with the next seq
  const next = await sendText(customer, "vend-1", "after the retry");
  assert.equal(next.seq, first.seq + 1);
  for (const [socket, mark] of [[vendor, vendorMark], [vendorAll, vendorAllMark]] as const) {
    const barrier = await messageWithSeq(socket, next.seq);
    const between = framesBetween(socket, mark, barrier);
    assert.deepEqual(
      between.map((frame) => [frame.type, frame.message?.id ?? frame.count]),
      [["chat_message", first.id], ["unread_messages", 1]],
    );
  }
  await using again = await cluster.openChat("vend-1", chat.id);
  const history = await again.nextOfType("latest_chat");
  assert.deepEqual(history.messages.map((message: { seq: number }) => message.seq), [1, 2]);
  assert.equal((await again.nextOfType("unread_messages")).count, 2);
});

Deno.test("a retried client_id returns the first message even when the content differs", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  const first = await sendText(customer, "vend-1", "original", { client_id: "c-7" });
  const retried = await sendText(customer, "vend-1", "changed on retry", { client_id: "c-7" });
  assert.equal(retried.id, first.id);
  assert.equal(retried.content, "original");
});

Deno.test("a retry from another socket of the sender is deduplicated too", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using customerAll = await joinAllChats(cluster, "cust-1");
  const first = await sendText(customer, "vend-1", "once", { client_id: "dup" });
  const fromOther = await sendText(customerAll, "vend-1", "once", {
    client_id: "dup",
    chat_id: chat.id,
  });
  assert.equal(fromOther.id, first.id);
});

Deno.test("the same client_id from another sender or in another chat is a new message", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  const otherChat = await service.createChat("cust-1", "vend-2");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using customerElsewhere = await joinChat(cluster, "cust-1", otherChat.id);
  const a = await sendText(customer, "vend-1", "a", { client_id: "same" });
  const b = await sendText(vendor, "cust-1", "b", { client_id: "same" });
  const c = await sendText(customerElsewhere, "vend-2", "c", { client_id: "same" });
  assert.equal(new Set([a.id, b.id, c.id]).size, 3);
  assert.deepEqual([a.seq, b.seq, c.seq], [1, 2, 1]);
});

Deno.test("concurrent sends with one client_id make one message", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  const sockets = [];
  for (let index = 0; index < 6; index++) sockets.push(await joinChat(cluster, "cust-1", chat.id));
  const acks = await Promise.all(
    sockets.map((socket) => sendText(socket, "vend-1", "racing", { client_id: "race" })),
  );
  assert.equal(new Set(acks.map((message) => message.id)).size, 1);
  const next = await sendText(sockets[0]!, "vend-1", "after the race");
  assert.equal(next.seq, 2);
});

Deno.test("client_ids that differ only in a lone surrogate are refused naming client_id, not made one message", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  // stored, both would be "c-\ufffd": the second message would be acked as the first
  for (const [content, clientId] of [["first", "c-\ud800"], ["second", "c-\ud801"]]) {
    const frame = { action: "send_message", receiver_id: "vend-1", media_type: "text", content };
    const error = await refused(customer, { ...frame, client_id: clientId }, "invalid_payload");
    assert.deepEqual(error.issues.map((issue: { path: string }) => issue.path), ["client_id"]);
  }
  const sent = await sendText(customer, "vend-1", "third", { client_id: "c-\ufffd" });
  assert.equal(sent.seq, 1, "nothing was stored before");
});

/** A chat of cust-1 with vend-1, whose agent agent-1 is a member to be removed. */
async function chatWithAgent(cluster: TestCluster) {
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  return { service, chat };
}

Deno.test("a retry of a stored client_id is acked with the stored message after its receiver left the vendor", async () => {
  await using cluster = await startCluster();
  const { service, chat } = await chatWithAgent(cluster);
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  const vendorMark = vendor.frames.length;
  const first = await sendText(customer, "agent-1", "to the agent", { client_id: "lost-ack" });
  await service.removeVendorMember("vend-1", "agent-1");

  // the first ack was lost: the retry is answered with what was stored, not refused
  const retried = await sendText(customer, "agent-1", "to the agent", { client_id: "lost-ack" });
  assert.deepEqual(retried, first);
  // a new message to the agent is refused as before
  await refused(customer, {
    action: "send_message",
    receiver_id: "agent-1",
    media_type: "text",
    content: "new",
    client_id: "new-one",
  }, "invalid_payload");
  const next = await sendText(customer, "vend-1", "after the retry");
  assert.equal(next.seq, first.seq + 1);
  const barrier = await messageWithSeq(vendor, next.seq);
  const told = framesBetween(vendor, vendorMark, barrier)
    .filter((frame) => frame.type === "chat_message");
  assert.deepEqual(told.map((frame) => frame.message.id), [first.id], "broadcast once");
});

Deno.test("a refused send with someone else's client_id, or in another chat, learns nothing of the stored message", async () => {
  await using cluster = await startCluster();
  const { service, chat } = await chatWithAgent(cluster);
  const otherChat = await service.createChat("cust-1", "vend-2");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await using customerElsewhere = await joinChat(cluster, "cust-1", otherChat.id);
  await sendText(customer, "agent-1", "mine", { client_id: "secret" });
  await service.removeVendorMember("vend-1", "agent-1");
  const frame = {
    action: "send_message",
    media_type: "text",
    content: "probe",
    client_id: "secret",
  };
  for (
    const [socket, receiver] of [[vendor, "agent-1"], [customerElsewhere, "agent-1"]] as const
  ) {
    const error = await refused(socket, { ...frame, receiver_id: receiver }, "invalid_payload");
    assert.ok(!JSON.stringify(error).includes("mine"), JSON.stringify(error));
  }
});

Deno.test("a banned sender's retries are refused like a new send, not acked", async () => {
  // no sweep during the test: the ban below is stored but never published, as when its
  // publish is lost, so the socket stays open and the sends themselves meet the ban
  await using cluster = await startCluster({ env: { FEED_SWEEP_SECONDS: "3600" } });
  const { service, chat } = await chatWithAgent(cluster);
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await sendText(customer, "vend-1", "to the vendor", { client_id: "to-vendor" });
  await sendText(customer, "agent-1", "to the agent", { client_id: "to-agent" });
  await service.removeVendorMember("vend-1", "agent-1");
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql`insert into bans (user_id, moderator_id, reason) values ('cust-1', 'mod', 'spam')`;
  } finally {
    await sql.end();
  }
  const frame = { action: "send_message", media_type: "text", content: "again" };
  const sends = [
    ["vend-1", "new-one"],
    ["vend-1", "to-vendor"],
    ["agent-1", "to-agent"],
  ];
  for (const [receiver, clientId] of sends) {
    await refused(customer, { ...frame, receiver_id: receiver, client_id: clientId }, "forbidden");
  }
});

Deno.test("a base64 media retry of a stored client_id is acked with the stored message and leaves no media row of its own", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using customerAgain = await joinChat(cluster, "cust-1", chat.id);
  const image = (await fixture("image.png")).toBase64();
  const send = (clientId: string) => ({
    action: "send_message",
    receiver_id: "vend-1",
    media_type: "image",
    image,
    client_id: clientId,
  });
  const first = (await acked(customer, send("photo-1"))).message;
  assert.deepEqual(await stored(cluster), { blobs: 1, chunks: 1, uploads: 1 });
  const retried = (await acked(customer, send("photo-1"))).message;
  assert.deepEqual(retried, first);
  assert.deepEqual(await stored(cluster), { blobs: 1, chunks: 1, uploads: 1 });
  // two sockets at once: the send not stored (on this instance, it waits for the other and then
  // finds its message) leaves no media row either
  const racing = await Promise.all(
    [customer, customerAgain].map(async (socket) => (await acked(socket, send("photo-2"))).message),
  );
  assert.equal(racing[0].id, racing[1].id);
  assert.deepEqual(await stored(cluster), { blobs: 1, chunks: 1, uploads: 2 });
});

for (const instances of [1, 2]) {
  const where = instances === 1 ? "on the same instance" : "on another instance";
  Deno.test(`a retry ${where} while the first send is still being written is acked with the same message, stored once`, async () => {
    // the chat's row is held while a socket joins and sends: longer than the writer's 0.5 s
    // lock_timeout on a loaded machine, and the first send would then be refused
    await using cluster = await startCluster({ instances, writerLockTimeoutMs: 10_000 });
    const chats = cluster.main.service.chat;
    const chat = await chats.createChat("cust-1", "vend-1");
    // a chat of the other writer lane: its send proves the instance has taken the retry in
    let elsewhere: { id: string; user_id: string } | undefined;
    for (let index = 0; !elsewhere && index < 40; index++) {
      const candidate = await chats.createChat(`cust-other-${index}`, "vend-1");
      if (writerLaneOf(candidate.id) !== writerLaneOf(chat.id)) elsewhere = candidate;
    }
    assert.ok(elsewhere, "no chat in the other lane");
    await using first = await joinChat(cluster, "cust-1", chat.id);
    await using vendor = await joinChat(cluster, "vend-1", chat.id);
    await using other = await joinChat(cluster, elsewhere.user_id, elsewhere.id);
    const vendorMark = vendor.frames.length;
    const operator = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
    try {
      const send = {
        action: "send_message",
        receiver_id: "vend-1",
        media_type: "text",
        content: "slow",
        client_id: "in-flight",
      };
      const transaction = await operator.reserve();
      let replies: [Frame, Frame];
      try {
        // the chat's row held from outside for less than the writer's lock_timeout: the
        // first send waits in the writer, then is stored
        await transaction`begin`;
        await transaction`select 1 from chats where id = ${chat.id} for update`;
        const firstReply = first.request(send, 10_000);
        await within(waitingForLock(operator), 5_000, "the first send to wait for the row");
        // the client reconnected (on this or another instance) and sent again at once
        await using again = await joinChat(cluster, "cust-1", chat.id, instances - 1);
        const retryReply = again.request(send, 10_000);
        if (instances === 2) {
          await within(
            waitingForLock(operator, "%", { sessions: 2 }),
            5_000,
            "the retry to wait for the row too",
          );
        } else {
          // the retry waits in the writer's queue, not in the database: a send of another
          // lane, sent after it and stored, shows that this instance has taken it in
          await sendText(other, "vend-1", "barrier: the retry was taken in before this");
        }
        await transaction`rollback`;
        replies = await Promise.all([firstReply, retryReply]);
      } finally {
        transaction.release();
      }
      const [firstAck, retryAck] = replies;
      assert.equal(firstAck.type, "ack", `the first send: ${JSON.stringify(firstAck)}`);
      assert.equal(retryAck.type, "ack", `the retry: ${JSON.stringify(retryAck)}`);
      assert.deepEqual(retryAck.message, firstAck.message);
      const [{ count }] = await operator<[{ count: number }]>`
        select count(*)::int as count from messages where chat_id = ${chat.id}`;
      assert.equal(count, 1, "the retry stored a second row");
      const next = await sendText(first, "vend-1", "after the retry");
      assert.equal(next.seq, firstAck.message.seq + 1);
      const barrier = await messageWithSeq(vendor, next.seq);
      const told = framesBetween(vendor, vendorMark, barrier)
        .filter((frame) => frame.type === "chat_message");
      assert.deepEqual(told.map((frame) => frame.message.id), [firstAck.message.id]);
    } finally {
      await operator.end();
    }
  });
}
