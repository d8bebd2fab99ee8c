import assert from "node:assert/strict";
import { storedRow } from "../tests/support/stored_messages.ts";
import { createAmendmentReplay, MAX_REPLAYED_READS } from "./amendment_replay.ts";
import type { ChatEnvelope } from "./events.ts";
import type { ChatStore, ReadTallies, ReadTally, StoredRead } from "./ports.ts";
import { type Chat, type StoredMessage, toClientMessage } from "./types.ts";

const chat: Chat = {
  id: "chat-1",
  user_id: "alice",
  vendor_id: "acme",
  created_at: "2026-12-05T10:00:00.000Z",
  updated_at: "2026-12-05T10:00:00.000Z",
  last_seq: 3,
};

/** A message of alice's to acme, as the store reads it. */
const stored = (seq: number, change: Partial<StoredMessage> = {}): StoredMessage =>
  storedRow(chat.id, seq, {
    id: `m${seq}`,
    sender_id: "alice",
    sender_side: "customer",
    receiver_id: "acme",
    content: `text ${seq}`,
    ...change,
  });

/** A replay over a store that answers `amended` and `reads` (after failing `failures` times). */
function replayOver(
  amended: StoredMessage[],
  failures = 0,
  retryAfterMs = 20,
  reads: StoredRead[] = [],
  followedSince = 0,
) {
  const replayed: ChatEnvelope["frame"][] = [];
  const errors: string[] = [];
  const asked: number[] = [];
  /** The chats whose read marks were read. */
  const marksRead: string[][] = [];
  /** What the sweeps told of chats whose tallies differed. */
  const differing: number[] = [];
  const store: Pick<ChatStore, "amendedWithin" | "readWithin" | "readTallies" | "getChats"> = {
    amendedWithin(_chatIds, { withinMs }) {
      asked.push(withinMs);
      if (asked.length <= failures) return Promise.reject(new Error("store away"));
      return Promise.resolve(amended);
    },
    readWithin(chatIds, _withinMs, limit) {
      marksRead.push([...chatIds]);
      return Promise.resolve(reads.filter((read) => chatIds.includes(read.chat_id)).slice(-limit));
    },
    readTallies: () => Promise.resolve(talliesOf(reads)),
    // alice's chats with acme: the test's, and those of its read marks
    getChats: (chatIds) => Promise.resolve(chatIds.map((id) => ({ ...chat, id }))),
  };
  const chatIds = new Set([chat.id, ...reads.map((read) => read.chat_id)]);
  const replay = createAmendmentReplay({
    store,
    followed: () => new Map([...chatIds].map((chatId) => [chatId, followedSince])),
    deliver: (_chatId, _seq, envelope) => replayed.push(envelope.frame),
    onError: (_error, context) => errors.push(context),
    onReadTalliesDiffering: (chats) => differing.push(chats),
    retryAfterMs,
  });
  return { replay, replayed, errors, asked, marksRead, differing };
}

/** The window every fake tally is of: the test's read marks are all in it. */
const tallied = {
  fromMs: Date.parse("2026-12-05T10:00:00.000Z"),
  toMs: Date.parse("2026-12-05T11:00:00.000Z"),
};

/** The store's tallies of `reads`, as readTallies sums them. */
function talliesOf(reads: StoredRead[]): ReadTallies {
  const chats = new Map<string, ReadTally & { chat_id: string }>();
  for (const read of reads) {
    const tally = chats.get(read.chat_id) ?? { chat_id: read.chat_id, reads: 0, offsetsMs: 0 };
    tally.reads++;
    tally.offsetsMs += Date.parse(read.read_at) - tallied.fromMs;
    chats.set(read.chat_id, tally);
  }
  return { ...tallied, chats: [...chats.values()] };
}

const deletedAt = "2026-12-05T10:01:00.000Z";
const older = "2026-12-05T10:02:00.000Z";
const newer = "2026-12-05T10:03:00.000Z";

Deno.test("a replay sends what the sockets have not had: a deletion, or an edit newer than the last delivered", async () => {
  const messages = [
    stored(1, { deleted: true, deleted_at: deletedAt, deleted_by: "alice", content: null }),
    stored(2, { edited_at: older, content: "second, as first edited" }),
    stored(3, { edited_at: newer, content: "third, edited" }),
  ];
  const { replay, replayed } = replayOver(messages);
  // delivered live already: the second message's later edit (the replay read an older state)
  replay.delivered({
    type: "message_edited",
    chat_id: chat.id,
    message: toClientMessage(stored(2, { edited_at: newer, content: "second, edited again" })),
  });
  await replay.request(60_000);
  assert.deepEqual(replayed, [
    {
      type: "message_deleted",
      chat_id: chat.id,
      message_id: "m1",
      seq: 1,
      deleted_by: "alice",
      deleted_at: deletedAt,
    },
    { type: "message_edited", chat_id: chat.id, message: toClientMessage(messages[2]!) },
  ]);

  // what it replayed is delivered (the feed tells it so): a second replay sends nothing
  for (const frame of replayed.splice(0)) replay.delivered(frame);
  await replay.request(60_000);
  assert.deepEqual(replayed, []);
});

Deno.test("an edit read before a deletion that was delivered meanwhile is not replayed after it", async () => {
  const { replay, replayed } = replayOver([stored(1, { edited_at: older, content: "edited" })]);
  replay.delivered({
    type: "message_deleted",
    chat_id: chat.id,
    message_id: "m1",
    seq: 1,
    deleted_by: "alice",
    deleted_at: newer,
  });
  await replay.request(60_000);
  assert.deepEqual(replayed, []);
});

Deno.test("a message delivered from the store brings its amendments: they are not replayed", async () => {
  const edited = stored(1, { edited_at: older, content: "edited" });
  const deleted = stored(2, { deleted: true, deleted_at: deletedAt, deleted_by: "alice" });
  const { replay, replayed } = replayOver([edited, deleted, stored(3, { edited_at: newer })]);
  replay.deliveredStored(edited);
  replay.deliveredStored(deleted);
  replay.deliveredStored(stored(3));
  await replay.request(60_000);
  assert.deepEqual(replayed.map((frame) => frame.type), ["message_edited"]);
});

Deno.test("a replay the store does not answer is asked again until it does, over a window grown by the wait, and reported once", async () => {
  const { replay, replayed, errors, asked } = replayOver([stored(1, { edited_at: older })], 7);
  await replay.request(60_000);
  assert.equal(replayed.length, 1);
  assert.deepEqual(errors, ["replay amendments"]);
  assert.equal(asked.length, 8);
  assert.ok(asked[7]! >= asked[0]! + 7 * 20, `windows asked: ${asked}`);
});

Deno.test("requests that come while a replay waits for the store are merged into one read of the widest window", async () => {
  const { replay, replayed, asked } = replayOver([stored(1, { edited_at: older })], 1);
  const first = replay.request(60_000);
  const second = replay.request(600_000);
  assert.equal(first, second);
  await first;
  assert.equal(asked.length, 2);
  assert.ok(asked[1]! >= 600_000, `windows asked: ${asked}`);
  assert.equal(replayed.length, 1);
});

Deno.test("a closed replay ends its wait for the store, and asks it no more", async () => {
  const { replay, asked } = replayOver([], 5);
  const replaying = replay.request(60_000);
  replay.close();
  await replaying;
  await replay.request(60_000);
  assert.deepEqual(asked, [60_000]);
});

/** acme's read mark of alice's message `seq`, as the store keeps it. */
const readOf = (seq: number, readerId = "acme"): StoredRead => ({
  chat_id: chat.id,
  message_id: `m${seq}`,
  seq,
  reader_id: readerId,
  read_at: older,
});

Deno.test("a replay sends message_read for each read mark the sockets have not had", async () => {
  const reads = [1, 2, 3, 4, 5, 6].map((seq) => readOf(seq));
  reads.push(readOf(7, "acme-agent"));
  const { replay, replayed } = replayOver([], 0, 20, reads);
  // delivered live already: message 1 marked alone, and up to 3 by acme (not by its agent)
  replay.delivered({ type: "message_read", ...readOf(1) });
  replay.delivered({
    type: "messages_read",
    chat_id: chat.id,
    reader_id: "acme",
    up_to_seq: 3,
    count: 2,
    read_at: older,
  });
  // delivered from the store already read; and deleted meanwhile
  replay.deliveredStored(stored(4, { is_read: true, read_at: older }));
  replay.delivered({
    type: "message_deleted",
    chat_id: chat.id,
    message_id: "m5",
    seq: 5,
    deleted_by: "alice",
    deleted_at: newer,
  });
  await replay.request(60_000);
  assert.deepEqual(replayed, [
    { type: "message_read", ...readOf(6) },
    { type: "message_read", ...readOf(7, "acme-agent") },
  ]);

  for (const frame of replayed.splice(0)) replay.delivered(frame);
  await replay.request(60_000);
  assert.deepEqual(replayed, []);
});

Deno.test("a replay reads the marks of many chats in batches by the store's tally, and sends them all", async () => {
  const marksOf = (chatId: string, count: number) =>
    Array.from({ length: count }, (_, index) => ({
      ...readOf(index + 1),
      chat_id: chatId,
      message_id: `${chatId} m${index + 1}`,
    }));
  // four in ten of a read each: more than a read in all
  const perChat = 0.4 * MAX_REPLAYED_READS;
  const reads = [
    ...marksOf("chat-1", perChat),
    ...marksOf("chat-2", perChat),
    ...marksOf("chat-3", perChat),
    ...marksOf("chat-4", 10),
  ];
  const { replay, replayed, errors, marksRead } = replayOver([], 0, 20, reads);
  await replay.request(60_000);
  assert.equal(replayed.length, reads.length);
  assert.deepEqual(errors, []);
  assert.deepEqual(marksRead, [["chat-1"], ["chat-2"], ["chat-3", "chat-4"]]);
});

Deno.test("a replay with more read marks of one chat than a read takes says so", async () => {
  const reads = Array.from({ length: MAX_REPLAYED_READS + 1 }, (_, index) => readOf(index + 1));
  const { replay, replayed, errors } = replayOver([], 0, 20, reads);
  await replay.request(60_000);
  assert.equal(replayed.length, MAX_REPLAYED_READS);
  assert.deepEqual(errors, ["replay amendments"]);
});

Deno.test("what was amended before this instance followed the chat is owed to none of its sockets", async () => {
  const amended = [
    stored(1, { edited_at: older, content: "edited before" }),
    stored(2, { edited_at: newer, content: "edited after" }),
    stored(3, { edited_at: older, deleted: true, deleted_at: newer, deleted_by: "alice" }),
  ];
  const reads = [readOf(1), { ...readOf(2), read_at: newer }];
  const followedSince = Date.parse("2026-12-05T10:02:30.000Z");
  const { replay, replayed } = replayOver(amended, 0, 20, reads, followedSince);
  await replay.request(60_000);
  const seqOf = (frame: ChatEnvelope["frame"]) =>
    frame.type === "message_edited" ? frame.message.seq : "seq" in frame ? frame.seq : null;
  assert.deepEqual(replayed.map((frame) => [frame.type, seqOf(frame)]), [
    ["message_edited", 2],
    ["message_deleted", 3],
    ["message_read", 2],
  ]);
});

Deno.test("a sweep replays edits, deletions and the read marks of a chat whose tally differs from what was delivered", async () => {
  const amended = [stored(1, { edited_at: older, content: "edited" })];
  const reads = [readOf(2), readOf(3), { ...readOf(4), read_at: newer }];
  const { replay, replayed, marksRead, differing } = replayOver(amended, 0, 20, reads);
  replay.delivered({ type: "message_read", ...readOf(2) });
  replay.delivered({ ...readOf(4), type: "message_read", read_at: newer });
  assert.equal(await replay.sweep({ withinMs: 60_000, exceptLastMs: 1_000 }), 2);
  assert.deepEqual(replayed, [
    { type: "message_edited", chat_id: chat.id, message: toClientMessage(amended[0]!) },
    { type: "message_read", ...readOf(3) },
  ]);
  assert.deepEqual(marksRead, [[chat.id]]);
  assert.deepEqual(differing, [1]);

  // delivered now: the tallies agree, and the marks are not read again
  for (const frame of replayed.splice(0)) replay.delivered(frame);
  assert.equal(await replay.sweep({ withinMs: 60_000, exceptLastMs: 1_000 }), 0);
  assert.deepEqual(marksRead, [[chat.id]]);
  assert.deepEqual(differing, [1]);
});

Deno.test("a sweep reads the marks of a chat followed since its window began, and tells of no difference: those made before were never owed", async () => {
  const reads = [readOf(1), { ...readOf(2), read_at: newer }];
  const followedSince = Date.parse("2026-12-05T10:02:30.000Z"); // after the window's start
  const { replay, replayed, marksRead, differing } = replayOver([], 0, 20, reads, followedSince);
  assert.equal(await replay.sweep({ withinMs: 60_000, exceptLastMs: 1_000 }), 1);
  assert.deepEqual(replayed, [{ type: "message_read", ...readOf(2), read_at: newer }]);
  assert.deepEqual(marksRead, [[chat.id]]);
  assert.deepEqual(differing, []);
});

Deno.test("a sweep reads no read marks when every chat's tally is what was delivered, a messages_read counting each it marked", async () => {
  const reads = [readOf(1), readOf(2), readOf(3), { ...readOf(5), read_at: newer }];
  const { replay, replayed, marksRead } = replayOver([], 0, 20, reads);
  replay.delivered({
    type: "messages_read",
    chat_id: chat.id,
    reader_id: "acme",
    up_to_seq: 3,
    count: 3,
    read_at: older,
  });
  replay.delivered({ ...readOf(5), type: "message_read", read_at: newer });
  assert.equal(await replay.sweep({ withinMs: 60_000, exceptLastMs: 1_000 }), 0);
  assert.deepEqual(replayed, []);
  assert.deepEqual(marksRead, []);
});

Deno.test("read marks delivered by the tens of thousands are all remembered, and none replayed", async () => {
  const marks = 60_000; // more than the memory holds of single entries
  const reads = Array.from({ length: marks }, (_, index) => readOf(index + 1));
  const { replay, replayed } = replayOver([], 0, 20, reads.slice(0, 3));
  for (const read of reads) replay.delivered({ type: "message_read", ...read });
  await replay.request(60_000);
  assert.deepEqual(replayed, []);
});
