import assert from "node:assert/strict";
import { storedRow } from "../tests/support/stored_messages.ts";
import { createDeliveredAmendments } from "./delivered_amendments.ts";
import type { ChatFrame } from "./events.ts";
import { type StoredMessage, toClientMessage } from "./types.ts";

const chatId = "chat-1";
const first = "2026-12-05T10:02:00.000Z";
const second = "2026-12-05T10:03:00.000Z";

const message = (change: Partial<StoredMessage> = {}) =>
  storedRow(chatId, 2, { id: "m2", ...change });

const edit = (at: string, content: string): ChatFrame => ({
  type: "message_edited",
  chat_id: chatId,
  message: toClientMessage(message({ edited_at: at, content })),
});

const deletion: ChatFrame = {
  type: "message_deleted",
  chat_id: chatId,
  message_id: "m2",
  seq: 2,
  deleted_by: "acme",
  deleted_at: second,
};

const read: ChatFrame = {
  type: "message_read",
  chat_id: chatId,
  message_id: "m2",
  seq: 2,
  reader_id: "alice",
  read_at: second,
};

Deno.test("a live edit, deletion or read mark that a replay already sent is already delivered", () => {
  const memory = createDeliveredAmendments();
  const replayed = [edit(first, "edited"), read];
  for (const frame of replayed) assert.equal(memory.alreadyDelivered(frame), false);
  for (const frame of replayed) memory.note(frame, true);
  // the same events as their delayed live publish brings them
  assert.equal(memory.alreadyDelivered(edit(first, "edited")), true);
  assert.equal(memory.alreadyDelivered({ ...read }), true);

  memory.note(deletion, true);
  assert.equal(memory.alreadyDelivered({ ...deletion }), true);
});

Deno.test("a live edit older than the one delivered, or of a message delivered as deleted, is already delivered", () => {
  const memory = createDeliveredAmendments();
  memory.note(edit(second, "edited again"), false);
  assert.equal(memory.alreadyDelivered(edit(first, "edited")), true, "older");

  const other = createDeliveredAmendments();
  other.note(deletion, false);
  assert.equal(
    other.alreadyDelivered(edit(first, "edited")),
    true,
    "the store edits no deleted message",
  );
});

Deno.test("two live edits of one message stamped the same millisecond both go out", () => {
  const memory = createDeliveredAmendments();
  memory.note(edit(first, "edited"), false);
  assert.equal(memory.alreadyDelivered(edit(first, "edited once more")), false);
  assert.equal(memory.alreadyDelivered(edit(second, "edited later")), false);
});

Deno.test("a live edit stamped as the edit a message read from the store carried is already delivered", () => {
  const memory = createDeliveredAmendments();
  memory.noteStored(message({ edited_at: first, content: "edited", is_read: true }));
  assert.equal(memory.alreadyDelivered(edit(first, "edited")), true);
  assert.equal(memory.alreadyDelivered(read), true, "its read mark came with it");
  assert.equal(memory.alreadyDelivered(edit(second, "edited again")), false);
});

Deno.test("messages, and a messages_read no replay sent one by one, are never taken as delivered by this check", () => {
  const memory = createDeliveredAmendments();
  const sent: ChatFrame = {
    type: "chat_message",
    chat_id: chatId,
    message: toClientMessage(message()),
  };
  const marked: ChatFrame = {
    type: "messages_read",
    chat_id: chatId,
    reader_id: "alice",
    up_to_seq: 2,
    count: 1,
    read_at: second,
  };
  for (const frame of [sent, marked]) memory.note(frame, false);
  assert.equal(memory.alreadyDelivered(sent), false);
  assert.equal(memory.alreadyDelivered(marked), false);
});

Deno.test("a live messages_read whose marks a replay sent as message_read is already delivered", () => {
  const memory = createDeliveredAmendments();
  const marked: ChatFrame = {
    type: "messages_read",
    chat_id: chatId,
    reader_id: "alice",
    up_to_seq: 3,
    count: 2,
    read_at: second,
  };
  assert.equal(memory.alreadyDelivered(marked), false);
  // its other mark was of a message deleted since: no replay sends that one
  memory.note(read, true);
  assert.equal(memory.alreadyDelivered(marked), true);
  // another reader's, or another batch of the same reader's
  assert.equal(memory.alreadyDelivered({ ...marked, reader_id: "bob" }), false);
  assert.equal(memory.alreadyDelivered({ ...marked, read_at: first }), false);
  // a live mark of that time is no replay
  const live = createDeliveredAmendments();
  live.note(read, false);
  assert.equal(live.alreadyDelivered(marked), false);
});

Deno.test("readSince: the time of a read mark delivered of a message an edit says is unread", () => {
  const memory = createDeliveredAmendments();
  // storedRow's messages are sent by the vendor's side (vend-1) to the customer (cust-1)
  const unread = toClientMessage(message({ edited_at: first, content: "edited" }));
  assert.equal(memory.readSince(unread, "cust-1"), undefined, "no mark delivered");
  memory.note({ ...read, reader_id: "cust-1" }, false);
  assert.equal(memory.readSince(unread, "cust-1"), second, "its message_read");
  assert.equal(memory.readSince({ ...unread, is_read: true }, "cust-1"), undefined, "read already");

  const upTo = (readerId: string, up_to_seq: number, read_at: string): ChatFrame => ({
    type: "messages_read",
    chat_id: chatId,
    reader_id: readerId,
    up_to_seq,
    count: 1,
    read_at,
  });
  const old = createDeliveredAmendments();
  // an instance that predates up_to_marked says the seq asked, maybe past later messages
  old.note(upTo("cust-1", 1_000, first), false, false);
  assert.equal(old.readSince(unread, "cust-1"), undefined, "not up_to_marked");
  const later = createDeliveredAmendments();
  later.note(upTo("cust-1", 1, first), false, true);
  later.note(upTo("vend-1", 5, first), false, true);
  assert.equal(later.readSince(unread, "cust-1"), undefined, "below it, or its own side's");
  later.note(upTo("cust-1", 3, second), false, true);
  later.note(upTo("cust-1", 4, "2026-12-05T10:04:00.000Z"), false, true);
  assert.equal(later.readSince(unread, "cust-1"), second, "the first that reached it");
  assert.equal(later.readSince({ ...unread, deleted: true }, "cust-1"), undefined);
});
