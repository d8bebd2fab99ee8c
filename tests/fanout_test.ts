import assert from "node:assert/strict";
import postgres from "postgres";
import { createPostgresStore } from "../db/postgres_store.ts";
import { fromAlice } from "./support/database.ts";
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
import { within } from "./support/wait.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

/** The seqs of every chat_message the socket has received, in arrival order. */
const seqsSeen = (socket: TestSocket) =>
  socket.frames.filter((frame) => frame.type === "chat_message").map((frame) => frame.message.seq);

Deno.test("two instances exchange messages both ways through NATS", async () => {
  await using cluster = await startCluster({ instances: 2 });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id, 0);
  await using vendor = await joinChat(cluster, "vend-1", chat.id, 1);

  const question = await sendText(customer, "vend-1", "over there?");
  assert.deepEqual((await vendor.nextOfType("chat_message")).message, question);
  assert.deepEqual((await vendor.nextOfType("unread_messages")).messages, [question]);
  const answer = await sendText(vendor, "cust-1", "right here");
  assert.deepEqual((await messageWithSeq(customer, 2)).message, answer);
  assert.deepEqual((await customer.nextOfType("unread_messages")).messages, [answer]);
});

Deno.test("the unread push on another instance holds what the store holds: joined late, past 50, after edits, deletions and reads", async () => {
  // one customer socket sends some sixty messages in a row
  await using cluster = await startCluster({ instances: 2, env: { WS_RATE_BURST: "100" } });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id, 0);
  const send = (content: string) => sendText(customer, "vend-1", content);
  // sent before the vendor's instance follows the chat: its first push reads the store
  for (let index = 1; index <= 3; index++) await send(`early ${index}`);
  await using vendor = await joinChat(cluster, "vend-1", chat.id, 1);
  /** The push on the vendor's socket (instance 1) after message `seq`, checked against the store. */
  const pushAfter = async (seq: number) => {
    const push = await vendor.next(
      (frame) => frame.type === "unread_messages" && frame.messages.at(-1)?.seq === seq,
      `the unread push after seq ${seq}`,
    );
    assert.deepEqual(push, await askUnread(vendor));
    return push;
  };
  const seqsOf = (push: Frame) => push.messages.map((message: Frame) => message.seq);

  await send("late 4");
  assert.deepEqual(seqsOf(await pushAfter(4)), [1, 2, 3, 4]);
  for (let index = 5; index <= 55; index++) await send(`message ${index}`);
  const full = await pushAfter(55);
  assert.equal(full.count, 55);
  assert.deepEqual(seqsOf(full), range(6, 55));

  const fortieth = full.messages.find((message: Frame) => message.seq === 40);
  await acked(customer, { action: "edit_message", message_id: fortieth.id, content: "edited" });
  await vendor.nextOfType("message_edited");
  await send("after the edit");
  const edited = await pushAfter(56);
  assert.equal(edited.messages.find((message: Frame) => message.seq === 40).content, "edited");

  // two deletions and one new message: the window reaches back past what instance 1 has seen
  for (const seq of [30, 31]) {
    const message = edited.messages.find((candidate: Frame) => candidate.seq === seq);
    await acked(customer, { action: "delete_message", message_id: message.id });
    await vendor.nextOfType("message_deleted");
  }
  await send("after the deletions");
  const afterDeletions = await pushAfter(57);
  assert.equal(afterDeletions.count, 55);
  assert.deepEqual(seqsOf(afterDeletions), [...range(6, 29), ...range(32, 57)]);

  await acked(vendor, { action: "read_up_to", seq: 20 });
  await customer.nextOfType("messages_read");
  await send("after the read");
  const afterRead = await pushAfter(58);
  assert.equal(afterRead.count, 36);
  assert.deepEqual(seqsOf(afterRead), [...range(21, 29), ...range(32, 58)].slice(-50));
});

Deno.test("200 concurrent messages from both sides reach every socket on both instances once, in seq order", async () => {
  await using cluster = await startCluster({ instances: 2 });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  // four senders a side, each within the per-socket rate limit
  const customers = [];
  const vendors = [];
  for (let index = 0; index < 4; index++) {
    customers.push(await joinChat(cluster, "cust-1", chat.id, 0));
    vendors.push(await joinChat(cluster, "vend-1", chat.id, 1));
  }
  const customerAll = await joinAllChats(cluster, "cust-1", 1);
  const vendorAll = await joinAllChats(cluster, "vend-1", 0);
  const listeners = [customers[0]!, vendors[0]!, customerAll, vendorAll];

  const sends: Array<Promise<Frame>> = [];
  for (let index = 0; index < 25; index++) {
    for (let sender = 0; sender < 4; sender++) {
      sends.push(sendText(customers[sender]!, "vend-1", `c${sender}.${index}`));
      sends.push(sendText(vendors[sender]!, "cust-1", `v${sender}.${index}`));
    }
  }
  const acks = await Promise.all(sends);
  assert.deepEqual(acks.map((message) => message.seq).toSorted((a, b) => a - b), range(1, 200));
  // each socket's messages are numbered in the order it sent them
  for (const prefix of ["c0.", "c3.", "v0.", "v3."]) {
    const own = acks.filter((message) => message.content.startsWith(prefix));
    assert.deepEqual(own.map((message) => message.content), range(0, 24).map((i) => prefix + i));
    const seqs = own.map((message) => message.seq);
    assert.deepEqual(seqs, seqs.toSorted((a, b) => a - b));
  }

  // barrier: one more message, after which nothing of the 200 may still arrive
  const last = await sendText(vendors[0]!, "cust-1", "the end");
  assert.equal(last.seq, 201);
  const bySeq = new Map(acks.map((message) => [message.seq, message]));
  for (const socket of new Set([...listeners, ...customers, ...vendors])) {
    await within(messageWithSeq(socket, 201), 10_000, "the last message");
    assert.deepEqual(seqsSeen(socket), range(1, 201));
  }
  for (const socket of listeners) {
    for (const frame of socket.frames.filter((frame) => frame.type === "chat_message")) {
      if (frame.message.seq <= 200) assert.deepEqual(frame.message, bySeq.get(frame.message.seq));
    }
  }
});

Deno.test("a message whose publish was lost, shown by a reply from the other side, brings its receivers their unread push on every instance", async () => {
  // no sweep: the reply's gap is what finds the message
  await using cluster = await startCluster({ instances: 2, env: { FEED_SWEEP_SECONDS: "3600" } });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, 0);
  await using acme = await joinChat(cluster, "acme", chat.id, 1);
  await using acmeAll = await joinAllChats(cluster, "acme", 0);
  const receivers = [acme, acmeAll];
  await sendText(alice, "acme", "published");
  for (const socket of receivers) {
    await socket.next((frame) => frame.type === "unread_messages" && frame.count === 1, "push 1");
  }
  // committed as the service commits it, and never published (its instance lost the answer)
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await createPostgresStore(sql).insertMessage(fromAlice(chat.id, "never published"));
  } finally {
    await sql.end();
  }

  // the reply's own push goes to alice's side: acme's is owed for the message filled before it
  await sendText(acme, "alice", "reply");
  for (const socket of receivers) {
    assert.equal((await messageWithSeq(socket, 2)).message.content, "never published");
    const push = await socket.nextOfType("unread_messages");
    assert.equal(push.count, 2);
    assert.deepEqual(push.messages.map((message: Frame) => message.seq), [1, 2]);
  }
  assert.deepEqual((await messageWithSeq(alice, 3)).message.content, "reply");
});

Deno.test("every kind of event crosses instances", async () => {
  await using cluster = await startCluster({ instances: 2 });
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using customer = await joinChat(cluster, "cust-1", chat.id, 0);
  await using agent = await joinChat(cluster, "agent-1", chat.id, 1);
  await using vendorAll = await joinAllChats(cluster, "vend-1", 1);

  const sent = await sendText(customer, "vend-1", "helo");
  await acked(agent, { action: "read_message", message_id: sent.id });
  assert.equal((await customer.nextOfType("message_read")).reader_id, "agent-1");
  await acked(customer, { action: "edit_message", message_id: sent.id, content: "hello" });
  assert.equal((await agent.nextOfType("message_edited")).message.content, "hello");
  assert.equal((await vendorAll.nextOfType("message_edited")).message.content, "hello");
  await acked(customer, { action: "typing", is_typing: true });
  assert.equal((await agent.nextOfType("typing")).user_id, "cust-1");
  assert.equal((await vendorAll.nextOfType("typing")).user_id, "cust-1");
  const second = await sendText(customer, "vend-1", "and more");
  await acked(vendorAll, { action: "read_up_to", chat_id: chat.id, seq: second.seq });
  assert.equal((await customer.nextOfType("messages_read")).count, 1);
  await acked(customer, { action: "delete_message", message_id: sent.id });
  assert.equal((await agent.nextOfType("message_deleted")).message_id, sent.id);
  assert.equal((await vendorAll.nextOfType("message_deleted")).message_id, sent.id);
});

Deno.test("a ban and an operator disconnect close sockets on every instance", async () => {
  await using cluster = await startCluster({ instances: 2 });
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await using vendorThere = await joinChat(cluster, "vend-1", chat.id, 1);
  await using vendorAllThere = await joinAllChats(cluster, "vend-1", 1);
  await using customerThere = await joinChat(cluster, "cust-1", chat.id, 1);

  await service.disconnectUser("vend-1", { moderator_id: "mod", reason: "r" });
  const closed = await within(
    Promise.all([vendorThere.closed, vendorAllThere.closed]),
    5_000,
    "the vendor's sockets on the other instance to close",
  );
  assert.deepEqual(closed.map((info) => info.code), [4408, 4408]);

  await service.banUser("cust-1", 0, { moderator_id: "mod", reason: "spam" });
  assert.equal((await within(customerThere.closed, 5_000, "the ban")).code, 4403);
});

Deno.test("a chats socket on one instance hears of a chat created through another", async () => {
  await using cluster = await startCluster({ instances: 2 });
  await cluster.main.service.chat.addVendorMember("vend-1", "agent-1", "agent");
  await using agentAll = await joinAllChats(cluster, "agent-1", 1);
  await using customerAll = await joinAllChats(cluster, "cust-1", 1);
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using vendor = await joinChat(cluster, "vend-1", chat.id, 0);
  const sent = await sendText(vendor, "cust-1", "welcome");
  assert.deepEqual((await customerAll.nextOfType("chat_message")).message, sent);
  assert.deepEqual((await agentAll.nextOfType("chat_message")).message, sent);
});

Deno.test("removing a member closes their socket on another instance", async () => {
  await using cluster = await startCluster({ instances: 2 });
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  await using agent = await joinChat(cluster, "agent-1", chat.id, 1);
  await using agentAll = await joinAllChats(cluster, "agent-1", 1);
  await service.removeVendorMember("vend-1", "agent-1");
  assert.equal((await within(agent.closed, 5_000, "the close")).code, 4403);
  // the removal reached the other instance before the close did
  await refused(agentAll, { action: "unread_message", chat_id: chat.id }, "forbidden");
  await acked(agentAll, { action: "list_chats" });
  assert.deepEqual((await agentAll.nextOfType("chats")).chats, []);
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, index) => from + index);
}
