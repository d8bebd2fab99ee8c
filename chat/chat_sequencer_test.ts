import assert from "node:assert/strict";
import { storedRow } from "../tests/support/stored_messages.ts";
import { ChatSequencer, MAX_HELD_AHEAD, MAX_HELD_BEHIND } from "./chat_sequencer.ts";
import { createDelivery, type Delivery } from "./delivery.ts";
import type { ChatStore } from "./ports.ts";
import { type StoredMessage, toClientMessage } from "./types.ts";

const chatId = "chat-1";
const participants = { user_id: "cust-1", vendor_id: "vend-1" };

/** A message of the chat as the store reads it. */
const stored = (seq: number): StoredMessage => storedRow(chatId, seq);

const message = (seq: number): Delivery =>
  createDelivery({
    chat: participants,
    audience: { to: "all" },
    frame: { type: "chat_message", chat_id: chatId, message: toClientMessage(stored(seq)) },
    sent_at: 0,
  });

const readMark = (seq: number): Delivery =>
  createDelivery({
    chat: participants,
    audience: { to: "all" },
    frame: {
      type: "message_read",
      chat_id: chatId,
      message_id: `m${seq}`,
      seq,
      reader_id: "cust-1",
      read_at: "2026-12-05T10:01:00.000Z",
    },
    sent_at: 0,
  });

/**
 * The vendor marked every message to its side up to `upToSeq` read; `upToMarked`: it is the
 * newest message marked (false: an instance that predates that sent it).
 */
const readsUpTo = (upToSeq: number, upToMarked = true): Delivery =>
  createDelivery({
    chat: participants,
    audience: { to: "all" },
    frame: {
      type: "messages_read",
      chat_id: chatId,
      reader_id: "vend-1",
      up_to_seq: upToSeq,
      count: 1,
      read_at: "2026-12-05T10:01:00.000Z",
    },
    sent_at: 0,
    ...(upToMarked && { up_to_marked: true as const }),
  });

/** A sequencer over a store holding `inStore`, with what it delivered as `type#seq`. */
function sequencerOver(inStore: StoredMessage[], gapWaitMs = 60_000) {
  const delivered: string[] = [];
  const read: Array<[number, number]> = [];
  const onStored: number[] = [];
  const afterStored: number[][] = [];
  const { promise: filled, resolve: fill } = Promise.withResolvers<void>();
  const store: Pick<ChatStore, "messagesBetween"> = {
    messagesBetween(_chatId, from, to) {
      read.push([from, to]);
      return Promise.resolve(inStore.filter(({ seq }) => seq >= from && seq <= to));
    },
  };
  const sequencer = new ChatSequencer(chatId, ({ envelope: { frame } }) => {
    const seq = frame.type === "chat_message"
      ? frame.message.seq
      : frame.type === "messages_read"
      ? frame.up_to_seq
      : "seq" in frame
      ? frame.seq
      : "";
    delivered.push(`${frame.type}#${seq}`);
    if (delivered.length === 1) fill();
  }, {
    store,
    onStored: (message) => onStored.push(message.seq),
    afterStored: (_chatId, messages) => afterStored.push(messages.map(({ seq }) => seq)),
    gapWaitMs,
    onError: (error) => assert.fail(String(error)),
  });
  return { sequencer, delivered, read, onStored, afterStored, filled };
}

Deno.test("events that arrive before the chat's stored position go out once it is known, in order, without the history", () => {
  const { sequencer, delivered } = sequencerOver([]);
  sequencer.receive(message(1));
  sequencer.receive(message(2));
  sequencer.receive(readMark(1));
  assert.deepEqual(delivered, []);
  assert.equal(sequencer.lastSeq, null);

  sequencer.startAfter(1);
  assert.deepEqual(delivered, ["chat_message#2", "message_read#1"]);
  assert.equal(sequencer.lastSeq, 2);
  sequencer.stop();
});

Deno.test("a message after a gap waits for the missing ones, which are read from the store and go out first", async () => {
  const { sequencer, delivered, read, onStored, afterStored, filled } = sequencerOver(
    [stored(2), stored(3)],
    1,
  );
  sequencer.startAfter(1);
  sequencer.receive(message(4));
  assert.deepEqual(delivered, []);

  await filled;
  assert.deepEqual(read, [[2, 3]]);
  assert.deepEqual(onStored, [2, 3]);
  // told once, for their unread pushes
  assert.deepEqual(afterStored, [[2, 3]]);
  assert.deepEqual(delivered, ["chat_message#2", "chat_message#3", "chat_message#4"]);
  sequencer.stop();
});

Deno.test("a gap the store fails to fill is read again ever more slowly, reported once per run of failures", async () => {
  const readAt: number[] = [];
  const errors: string[] = [];
  const { promise: filled, resolve: fill } = Promise.withResolvers<void>();
  const sequencer = new ChatSequencer(chatId, () => fill(), {
    store: {
      messagesBetween(_chatId, from, to) {
        readAt.push(performance.now());
        // the store is away for the first three reads
        if (readAt.length <= 3) return Promise.reject(new Error("store away"));
        return Promise.resolve([stored(2)].filter(({ seq }) => seq >= from && seq <= to));
      },
    },
    onStored: () => {},
    afterStored: () => {},
    gapWaitMs: 20,
    onError: (error) => errors.push(String(error)),
  });
  sequencer.startAfter(1);
  sequencer.receive(message(3));
  await filled;
  sequencer.stop();
  assert.equal(readAt.length, 4);
  assert.deepEqual(errors, ["Error: store away"]);
  // 20 ms, then 40, 80, 160 after each failure
  const waits = readAt.slice(1).map((at, i) => at - readAt[i]!);
  assert.ok(waits[0]! >= 38 && waits[1]! >= 78 && waits[2]! >= 158, `waits ${waits.join(", ")}`);
});

Deno.test("a read mark and a replayed edit of a message held behind a gap go out after it, not before, if still owed then", () => {
  const { sequencer, delivered } = sequencerOver([]);
  sequencer.startAfter(1);
  sequencer.receive(message(3));
  sequencer.receive(readMark(3));
  sequencer.replayed(3, readMark(3), () => true);
  // by the time message 5 goes out it came from the store amended: no longer owed
  sequencer.replayed(5, readMark(5), () => false);
  assert.deepEqual(delivered, []);

  sequencer.receive(message(2)); // the bus brings the missing one before the gap is filled
  assert.deepEqual(delivered, [
    "chat_message#2",
    "chat_message#3",
    "message_read#3",
    "message_read#3",
  ]);
  sequencer.receive(message(4));
  sequencer.receive(message(5));
  assert.deepEqual(delivered.slice(4), ["chat_message#4", "chat_message#5"]);
  sequencer.stop();
});

Deno.test("a replayed deletion waits behind live events about the same message held behind a gap, and is dropped once they carried it", () => {
  const { sequencer, delivered } = sequencerOver([]);
  sequencer.startAfter(5);
  sequencer.receive(message(8)); // 6 and 7 were lost: a gap
  // the sender reads, then deletes, message 5 live (a deletion stands for both here)
  sequencer.receive(readMark(5));
  sequencer.receive(readMark(5));
  // the replay found 5 deleted in the store; it is owed only if the live deletion did not go out
  sequencer.replayed(
    5,
    readMark(5),
    () => delivered.filter((e) => e === "message_read#5").length < 2,
  );
  assert.deepEqual(delivered, []);

  sequencer.deliverStored([stored(6), stored(7)], participants);
  sequencer.releaseAhead();
  assert.deepEqual(delivered, [
    "chat_message#6",
    "chat_message#7",
    "chat_message#8",
    "message_read#5",
    "message_read#5",
  ]);
  sequencer.stop();
});

Deno.test("an event about a message not delivered yet waits for it, and keeps its place before later ones", () => {
  const { sequencer, delivered } = sequencerOver([]);
  sequencer.startAfter(1);
  // message 3 is still being read from the store when its read mark comes over the bus
  sequencer.receive(readMark(3));
  sequencer.receive(readMark(1));
  assert.deepEqual(delivered, []);

  sequencer.deliverStored([stored(2), stored(3)], participants);
  sequencer.releaseAhead();
  assert.deepEqual(delivered, [
    "chat_message#2",
    "chat_message#3",
    "message_read#3",
    "message_read#1",
  ]);
  sequencer.stop();
});

Deno.test("a messages_read waits for the newest message it marked, and keeps its place before later events", () => {
  const { sequencer, delivered } = sequencerOver([]);
  sequencer.startAfter(1);
  // message 2 was stored and marked read, but its own broadcast is still on its way
  sequencer.receive(readsUpTo(2));
  sequencer.receive(readMark(1));
  assert.deepEqual(delivered, []);

  sequencer.receive(message(2));
  assert.deepEqual(delivered, ["chat_message#2", "messages_read#2", "message_read#1"]);
  // one that marked nothing newer than what went out goes out at once
  sequencer.receive(readsUpTo(1));
  assert.deepEqual(delivered.slice(3), ["messages_read#1"]);
  // from an instance that predates up_to_marked: the seq asked, which no message may ever reach
  sequencer.receive(readsUpTo(2_147_483_647, false));
  sequencer.receive(readMark(2));
  assert.deepEqual(delivered.slice(4), ["messages_read#2147483647", "message_read#2"]);
  sequencer.stop();
});

Deno.test("messages delivered from the store leave those waiting ahead of them to releaseAhead()", () => {
  const { sequencer, delivered, onStored } = sequencerOver([]);
  sequencer.startAfter(1);
  sequencer.receive(message(4));
  // the bus brought 3 meanwhile: it waits too
  sequencer.receive(message(3));

  const news = sequencer.deliverStored([stored(2), stored(3)], participants);
  assert.deepEqual(news.map(({ seq }) => seq), [2, 3]);
  assert.deepEqual(onStored, [2, 3]);
  assert.deepEqual(delivered, ["chat_message#2", "chat_message#3"]);

  sequencer.releaseAhead();
  assert.deepEqual(delivered, ["chat_message#2", "chat_message#3", "chat_message#4"]);
  assert.equal(sequencer.lastSeq, 4);
  sequencer.stop();
});

Deno.test("messages that come behind a gap the store cannot fill are held only up to a bound; the rest are read from the store once it answers, and every one goes out once, in order", async () => {
  const last = 2 + 3 * MAX_HELD_AHEAD;
  const delivered: number[] = [];
  let storeAway = true;
  const { promise: allOut, resolve: done } = Promise.withResolvers<void>();
  const sequencer = new ChatSequencer(chatId, ({ envelope: { frame } }) => {
    if (frame.type !== "chat_message") return;
    delivered.push(frame.message.seq);
    if (frame.message.seq === last) done();
  }, {
    store: {
      messagesBetween(_chatId, from, to) {
        if (storeAway) return Promise.reject(new Error("store away"));
        return Promise.resolve(
          Array.from({ length: to - from + 1 }, (_, index) => stored(from + index)),
        );
      },
    },
    onStored: () => {},
    afterStored: () => {},
    gapWaitMs: 5,
    onError: () => {},
  });
  sequencer.startAfter(1);
  // message 2 was lost; the rest keep coming while the store is away
  for (let seq = 3; seq <= last; seq++) sequencer.receive(message(seq));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(
    sequencer.held <= MAX_HELD_AHEAD,
    `${sequencer.held} messages held for a gap the store cannot fill`,
  );

  storeAway = false;
  await allOut;
  sequencer.stop();
  assert.deepEqual(delivered, Array.from({ length: last - 1 }, (_, index) => index + 2));
  assert.equal(sequencer.held, 0);
});

/**
 * A sequencer after message 1 whose message 2 was lost and 3 came, over a store that fails
 * until `storeBack()`, which holds message 2; `filled` resolves once 3 went out.
 */
function behindGapWhileStoreAway() {
  const delivered: string[] = [];
  const dropped: Array<[string, number]> = [];
  let storeAway = true;
  const { promise: filled, resolve: fill } = Promise.withResolvers<void>();
  const sequencer = new ChatSequencer(chatId, ({ envelope: { frame } }) => {
    const seq = frame.type === "chat_message" ? frame.message.seq : "seq" in frame && frame.seq;
    delivered.push(`${frame.type}#${seq}`);
    if (frame.type === "chat_message" && seq === 3) queueMicrotask(fill);
  }, {
    store: {
      messagesBetween(_chatId, from, to) {
        if (storeAway) return Promise.reject(new Error("store away"));
        return Promise.resolve([stored(2)].filter(({ seq }) => seq >= from && seq <= to));
      },
    },
    onStored: () => {},
    afterStored: () => {},
    onHeldDropped: (chat, sinceMs) => dropped.push([chat, sinceMs]),
    gapWaitMs: 5,
    onError: () => {},
  });
  sequencer.startAfter(1);
  sequencer.receive(message(3));
  return { sequencer, delivered, dropped, filled, storeBack: () => (storeAway = false) };
}

Deno.test("events about messages held behind a gap the store cannot fill are held only up to a bound; those past it are asked for again from the store once the gap is filled", async () => {
  const { sequencer, delivered, dropped, filled, storeBack } = behindGapWhileStoreAway();
  // read marks of message 3 keep coming while the store is away
  for (let n = 0; n < 3 * MAX_HELD_BEHIND; n++) {
    const mark = readMark(3);
    mark.envelope.sent_at = 1_000 + n;
    sequencer.receive(mark);
  }
  assert.ok(
    sequencer.heldBehind <= MAX_HELD_BEHIND,
    `${sequencer.heldBehind} events held behind a gap the store cannot fill`,
  );
  assert.deepEqual(dropped, [], "nothing is asked for before the gap is filled");

  storeBack();
  await filled;
  sequencer.stop();
  assert.deepEqual(delivered.slice(0, 2), ["chat_message#2", "chat_message#3"]);
  assert.equal(delivered.length, 2 + MAX_HELD_BEHIND, "those held go out");
  // the first one not held was sent at 1_000 + MAX_HELD_BEHIND: asked for from then on
  assert.deepEqual(dropped, [[chatId, 1_000 + MAX_HELD_BEHIND]]);
  assert.equal(sequencer.heldBehind, 0);
});

Deno.test("replayed events not kept behind a gap are asked for again from when their changes were made, not when they were replayed", async () => {
  const { sequencer, dropped, filled, storeBack } = behindGapWhileStoreAway();
  // read marks of an outage an hour ago, replayed now
  const readAt = Date.parse("2026-12-05T10:01:00.000Z");
  for (let n = 0; n <= MAX_HELD_BEHIND; n++) {
    const mark = readMark(3);
    mark.envelope.sent_at = Date.now();
    sequencer.replayed(3, mark, () => true);
  }
  storeBack();
  await filled;
  sequencer.stop();
  assert.deepEqual(dropped, [[chatId, readAt]]);
});
