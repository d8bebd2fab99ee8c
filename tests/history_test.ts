import assert from "node:assert/strict";
import { startCluster, type TestCluster } from "./support/service.ts";
import {
  acked,
  holdAnswers,
  joinAllChats,
  joinChat,
  messageWithSeq,
  seedMessages,
  sendText,
} from "./support/steps.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

const seqsOf = (page: Frame) => page.messages.map((message: { seq: number }) => message.seq);
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, index) => from + index);

/** A chat whose customer has sent `count` messages, numbered from 1. */
async function chatWithHistory(cluster: TestCluster, count: number) {
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await seedMessages(cluster, chat.id, { from: "cust-1", to: "vend-1", count });
  const customer = await joinChat(cluster, "cust-1", chat.id);
  return { chat, customer };
}

/** `load_latest_chat` with these fields; resolves with the `latest_chat` it brings. */
async function load(socket: TestSocket, fields: Frame): Promise<Frame> {
  await acked(socket, { action: "load_latest_chat", ...fields });
  return await socket.nextOfType("latest_chat");
}

Deno.test("load_latest_chat without fields is the newest 50, oldest first, with has_more", async () => {
  await using cluster = await startCluster();
  const { chat, customer } = await chatWithHistory(cluster, 60);
  const page = await load(customer, {});
  assert.equal(page.chat_id, chat.id);
  assert.deepEqual(seqsOf(page), range(11, 60));
  assert.equal(page.has_more, true);
  assert.equal(page.messages[0].content, "m11");
});

Deno.test("load_latest_chat with a limit is the newest that many", async () => {
  await using cluster = await startCluster();
  const { customer } = await chatWithHistory(cluster, 5);
  assert.deepEqual(seqsOf(await load(customer, { limit: 2 })), [4, 5]);
  const all = await load(customer, { limit: 5 });
  assert.deepEqual(seqsOf(all), range(1, 5));
  assert.equal(all.has_more, false);
  const more = await load(customer, { limit: 100 });
  assert.deepEqual(seqsOf(more), range(1, 5));
  assert.equal(more.has_more, false);
});

Deno.test("before_seq pages back through the whole history until has_more is false", async () => {
  await using cluster = await startCluster();
  const { customer } = await chatWithHistory(cluster, 23);
  const seen: number[] = [];
  let page = await load(customer, { limit: 10 });
  const pages = [seqsOf(page)];
  while (page.has_more) {
    page = await load(customer, { limit: 10, before_seq: page.messages[0].seq });
    pages.push(seqsOf(page));
  }
  for (const seqs of pages.toReversed()) seen.push(...seqs);
  assert.deepEqual(pages, [range(14, 23), range(4, 13), range(1, 3)]);
  assert.deepEqual(seen, range(1, 23));
});

Deno.test("after_seq fills a gap forward, oldest first, with has_more while newer ones remain", async () => {
  await using cluster = await startCluster();
  const { customer } = await chatWithHistory(cluster, 8);
  const first = await load(customer, { after_seq: 3, limit: 2 });
  assert.deepEqual(seqsOf(first), [4, 5]);
  assert.equal(first.has_more, true);
  const second = await load(customer, { after_seq: 5, limit: 2 });
  assert.deepEqual(seqsOf(second), [6, 7]);
  assert.equal(second.has_more, true);
  const last = await load(customer, { after_seq: 7, limit: 2 });
  assert.deepEqual(seqsOf(last), [8]);
  assert.equal(last.has_more, false);
  const none = await load(customer, { after_seq: 8 });
  assert.deepEqual(none.messages, []);
  assert.equal(none.has_more, false);
  const fromStart = await load(customer, { after_seq: 0, limit: 3 });
  assert.deepEqual(seqsOf(fromStart), [1, 2, 3]);
});

Deno.test("before_seq and after_seq together give the messages strictly between them", async () => {
  await using cluster = await startCluster();
  const { customer } = await chatWithHistory(cluster, 10);
  const between = await load(customer, { after_seq: 2, before_seq: 8 });
  assert.deepEqual(seqsOf(between), [3, 4, 5, 6, 7]);
  assert.equal(between.has_more, false);
});

Deno.test("a client that missed messages while away recovers them with after_seq", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  let lastSeen = 0;
  {
    await using vendor = await joinChat(cluster, "vend-1", chat.id);
    for (let index = 1; index <= 3; index++) await sendText(customer, "vend-1", `early ${index}`);
    lastSeen = (await messageWithSeq(vendor, 3)).message.seq;
  }
  await seedMessages(cluster, chat.id, { from: "cust-1", to: "vend-1", count: 60 });

  await using vendor = await cluster.openChat("vend-1", chat.id);
  const newest = await vendor.nextOfType("latest_chat");
  assert.equal(newest.messages[0].seq, 14, "the newest page leaves a gap after seq 3");
  const recovered: number[] = [];
  let page: Frame;
  do {
    page = await load(vendor, { after_seq: lastSeen, limit: 25 });
    recovered.push(...seqsOf(page));
    lastSeen = page.messages.at(-1)?.seq ?? lastSeen;
  } while (page.has_more);
  assert.deepEqual(recovered, range(4, 63));
});

Deno.test("history shows both sides' messages in seq order with their senders", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using vendor = await joinChat(cluster, "vend-1", chat.id);
  await sendText(customer, "vend-1", "question");
  await sendText(vendor, "cust-1", "answer");
  await sendText(customer, "vend-1", "thanks");
  const page = await load(vendor, {});
  assert.deepEqual(
    page.messages.map((message: Frame) => [message.seq, message.sender_id, message.content]),
    [[1, "cust-1", "question"], [2, "vend-1", "answer"], [3, "cust-1", "thanks"]],
  );
});

Deno.test("load_latest_chat on /v1/ws/chats/ pages the chat named by chat_id", async () => {
  await using cluster = await startCluster();
  const { chat } = await chatWithHistory(cluster, 4);
  await cluster.main.service.chat.createChat("cust-1", "vend-2");
  await using all = await joinAllChats(cluster, "cust-1");
  const page = await load(all, { chat_id: chat.id, limit: 3 });
  assert.equal(page.chat_id, chat.id);
  assert.deepEqual(seqsOf(page), [2, 3, 4]);
  assert.equal(page.has_more, true);
  const older = await load(all, { chat_id: chat.id, before_seq: 2 });
  assert.deepEqual(seqsOf(older), [1]);
  assert.equal(older.has_more, false);
});

/**
 * What `socket` was sent since `mark` (a `frames.length` read before), in order: each
 * `latest_chat` page as "page" and its seqs, each live `chat_message` as "live" and its seq.
 */
function pagesAndLiveSince(socket: TestSocket, mark: number): string[] {
  return socket.frames.slice(mark).flatMap((frame) =>
    frame.type === "latest_chat"
      ? [`page ${seqsOf(frame).join(",")}`]
      : frame.type === "chat_message"
      ? [`live ${frame.message.seq}`]
      : []
  );
}

/**
 * A chat of three messages whose vendor asks, on a socket of `endpoint`, for a page with `fields`,
 * while the customer sends `during` messages after the socket's live events began to be held for
 * the answer and before its read (their events reach the socket then, in-process), and one more
 * after its ack: what the socket was sent from the ask on (pagesAndLiveSince).
 */
async function sentAroundPage(endpoint: "chat" | "chats", fields: Frame, during: number) {
  await using cluster = await startCluster({ nats: false });
  const { chat, customer } = await chatWithHistory(cluster, 3);
  await using witness = await joinChat(cluster, "vend-1", chat.id);
  await using reader = endpoint === "chat"
    ? await joinChat(cluster, "vend-1", chat.id)
    : await joinAllChats(cluster, "vend-1");
  const history = holdAnswers(cluster.main.service.chat, "loadLatestChat", {
    beforeReading: true,
  });
  const mark = reader.frames.length;
  const chatId = endpoint === "chats" ? { chat_id: chat.id } : {};
  reader.send({ action: "load_latest_chat", request_id: "page", ...chatId, ...fields });
  await history.read;
  for (let index = 1; index <= during; index++) {
    const sent = await sendText(customer, "vend-1", `while the page is read ${index}`);
    // the vendor's other socket on the instance has it: the reader was handed it too
    await messageWithSeq(witness, sent.seq);
  }
  history.release();
  await reader.next((frame) => frame.request_id === "page", "the ack of load_latest_chat");
  const after = await sendText(customer, "vend-1", "after the page");
  await messageWithSeq(reader, after.seq);
  return pagesAndLiveSince(reader, mark);
}

// The contract's "once each, in seq order" is of events: a page is the answer to a request, and
// the live event of a message it had still comes, once, after it. Dropped, it would reach no
// client that takes a page as an answer only (the client library's heartbeat read, an
// application's load_latest_chat), and the client library drops it by seq anyway.
for (const endpoint of ["chat", "chats"] as const) {
  Deno.test(`a message whose live event came while a load_latest_chat page that has it was read reaches a /v1/ws/${endpoint}/ socket live too, once, after the page`, async () => {
    assert.deepEqual(await sentAroundPage(endpoint, {}, 1), [
      "page 1,2,3,4",
      "live 4",
      "live 5",
    ]);
  });

  Deno.test(`live events held while a load_latest_chat page of the newest message alone was read reach a /v1/ws/${endpoint}/ socket once each, in seq order, after the page`, async () => {
    assert.deepEqual(await sentAroundPage(endpoint, { limit: 1 }, 2), [
      "page 5",
      "live 4",
      "live 5",
      "live 6",
    ]);
  });
}
