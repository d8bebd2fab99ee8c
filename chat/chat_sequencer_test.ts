import assert from "node:assert/strict";
import { storedMessage } from "../tests/support/stored_messages.ts";
import { createChatSequencer } from "./chat_sequencer.ts";
import { createDelivery, type Delivery } from "./delivery.ts";
import type { ChatStore } from "./ports.ts";
import { type StoredMessage, toClientMessage } from "./types.ts";

const chatId = "chat-1";
const participants = { user_id: "cust-1", vendor_id: "vend-1" };

/** A message of the chat as the store reads it. */
const stored = (seq: number): StoredMessage => ({
  ...storedMessage(chatId, seq),
  sender_side: "vendor",
  media_id: null,
  deleted_at: null,
  deleted_by: null,
});

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

/** A sequencer over a store holding `inStore`, with what it delivered as `type#seq`. */
function sequencerOver(inStore: StoredMessage[], gapWaitMs = 60_000) {
  const delivered: string[] = [];
  const read: Array<[number, number]> = [];
  const onStored: number[] = [];
  const { promise: filled, resolve: fill } = Promise.withResolvers<void>();
  const store: Pick<ChatStore, "messagesBetween"> = {
    messagesBetween(_chatId, from, to) {
      read.push([from, to]);
      return Promise.resolve(inStore.filter(({ seq }) => seq >= from && seq <= to));
    },
  };
  const sequencer = createChatSequencer(chatId, {
    store,
    deliver({ envelope: { frame } }) {
      const seq = frame.type === "chat_message"
        ? frame.message.seq
        : "seq" in frame
        ? frame.seq
        : "";
      delivered.push(`${frame.type}#${seq}`);
      if (delivered.length === 1) fill();
    },
    onStored: (message) => onStored.push(message.seq),
    gapWaitMs,
    onError: (error) => assert.fail(String(error)),
  });
  return { sequencer, delivered, read, onStored, filled };
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
  const { sequencer, delivered, read, onStored, filled } = sequencerOver([stored(2), stored(3)], 1);
  sequencer.startAfter(1);
  sequencer.receive(message(4));
  assert.deepEqual(delivered, []);

  await filled;
  assert.deepEqual(read, [[2, 3]]);
  assert.deepEqual(onStored, [2, 3]);
  assert.deepEqual(delivered, ["chat_message#2", "chat_message#3", "chat_message#4"]);
  sequencer.stop();
});

Deno.test("a read mark and a replayed edit of a message held behind a gap go out after it, not before", () => {
  const { sequencer, delivered } = sequencerOver([]);
  sequencer.startAfter(1);
  sequencer.receive(message(3));
  sequencer.receive(readMark(3));
  sequencer.replayed(3, readMark(3));
  sequencer.replayed(5, readMark(5)); // still to come from the store, which gives it amended
  assert.deepEqual(delivered, []);

  sequencer.receive(message(2)); // the bus brings the missing one before the gap is filled
  assert.deepEqual(delivered, [
    "chat_message#2",
    "chat_message#3",
    "message_read#3",
    "message_read#3",
  ]);
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
