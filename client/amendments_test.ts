import assert from "node:assert/strict";
import { storedMessage } from "../tests/support/stored_messages.ts";
import { type Amendment, applyAmendments, laterCopy } from "./amendments.ts";

const C = "00000000-0000-4000-8000-00000000000c";
const at = (second: number) => `2026-01-01T00:00:0${second}.000Z`;
const edited = (second: number, content: string): Amendment => ({
  type: "message_edited",
  chat_id: C,
  message: storedMessage(C, 3, { content, edited_at: at(second), updated_at: at(second) }),
});
const deleted: Amendment = {
  type: "message_deleted",
  chat_id: C,
  message_id: `${C}-3`,
  seq: 3,
  deleted_by: "vend-1",
  deleted_at: at(9),
};

Deno.test("laterCopy() keeps a deleted copy, else the one updated last", () => {
  const live = storedMessage(C, 3);
  const tombstone = storedMessage(C, 3, { content: null, deleted: true });
  assert.equal(laterCopy(live, tombstone), tombstone);
  assert.equal(laterCopy(tombstone, live), tombstone);
  const read = storedMessage(C, 3, { is_read: true, updated_at: at(5) });
  assert.equal(laterCopy(read, live), read);
  assert.equal(laterCopy(live, read), read);
});

Deno.test("applyAmendments() deletes with the text of every edit, and passes on the deletion alone", () => {
  const { message, after } = applyAmendments(storedMessage(C, 3), [edited(5, "v2"), deleted]);
  assert.deepEqual(
    [message.deleted, message.content, message.media_url, message.updated_at],
    [true, null, null, at(9)],
  );
  assert.deepEqual(after, [deleted]);
});

Deno.test("applyAmendments() applies an edit newer than the copy and drops an older one", () => {
  const newer = applyAmendments(storedMessage(C, 3), [edited(5, "v2")]);
  assert.equal(newer.message.content, "v2");
  assert.deepEqual(newer.after, [edited(5, "v2")]);
  // the copy was read after a second edit whose event has not come yet
  const stored = storedMessage(C, 3, { content: "v3", updated_at: at(7) });
  const older = applyAmendments(stored, [edited(5, "v2")]);
  assert.equal(older.message, stored);
  assert.deepEqual(older.after, []);
});

Deno.test("applyAmendments() marks a copy read at read_at, and the mark stays through a deletion", () => {
  const read: Amendment = {
    type: "message_read",
    chat_id: C,
    message_id: `${C}-3`,
    seq: 3,
    reader_id: "cust-1",
    read_at: at(5),
  };
  const marked = applyAmendments(storedMessage(C, 3), [read]);
  assert.deepEqual(
    [marked.message.is_read, marked.message.read_at, marked.message.updated_at],
    [true, at(5), at(5)],
  );
  assert.deepEqual(marked.after, [read]);
  const gone = applyAmendments(storedMessage(C, 3), [read, deleted]);
  assert.deepEqual([gone.message.is_read, gone.message.content], [true, null]);
  assert.deepEqual(gone.after, [read, deleted]);
});
