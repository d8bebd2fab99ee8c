import assert from "node:assert/strict";
import { historyPage, messageDeleted, storedMessage } from "../tests/support/stored_messages.ts";
import { createWatch } from "../tests/support/wait.ts";
import { amendedSeq } from "./amendments.ts";
import { ConnectionLostError } from "./errors.ts";
import { createMessageOrder } from "./message_order.ts";
import type { LatestChatFrame } from "./types.ts";

const C = "00000000-0000-4000-8000-00000000000c";
const D = "00000000-0000-4000-8000-00000000000d";

/**
 * A message order whose reads the test answers one by one, the seqs it released, and what it
 * gave the application in order (`#seq content`, `message_deleted #seq`).
 */
function orderWithScriptedReads() {
  const reads: Array<{
    chatId: string;
    after: number;
    answer: (page: LatestChatFrame) => void;
    fail: (error: Error) => void;
  }> = [];
  const released: number[] = [];
  const shown: string[] = [];
  const watch = createWatch();
  const order = createMessageOrder({
    load(chatId, after) {
      const { promise, resolve, reject } = Promise.withResolvers<LatestChatFrame>();
      reads.push({ chatId, after, answer: resolve, fail: reject });
      watch.changed();
      return promise;
    },
    release(_chatId, message) {
      released.push(message.seq);
      const state = message.deleted
        ? "(deleted)"
        : `${message.content}${message.is_read ? " (read)" : ""}`;
      shown.push(`#${message.seq} ${state}`);
      watch.changed();
    },
    amended(change) {
      shown.push(
        change.type === "messages_read"
          ? `messages_read up to #${change.up_to_seq}`
          : `${change.type} #${amendedSeq(change)}`,
      );
      watch.changed();
    },
    skipped(gap) {
      shown.push(`gap #${gap.from_seq}-#${gap.to_seq}`);
      watch.changed();
    },
    retryDelay: () => 1,
  });
  return {
    order,
    released,
    shown,
    /** The `index`th read the order made (0: the first), once it is made. */
    read: (index: number) => watch.until(() => reads[index], `read #${index}`),
    /** The seqs released, once `seq` is among them. */
    releasedUpTo: (seq: number) =>
      watch.until(() => released.includes(seq) ? released : undefined, `seq ${seq} released`),
    /** What the application was given, once it is `count` events. */
    shownUpTo: (count: number) =>
      watch.until(() => shown.length >= count ? shown : undefined, `${count} events`),
  };
}

Deno.test("a page that is not the one after_seq asked for is read again, not skipped past", async () => {
  const { order, read, releasedUpTo } = orderWithScriptedReads();
  order.startAfter(C, 41);
  order.take(C, [storedMessage(C, 43)]);

  const first = await read(0);
  assert.deepEqual([first.chatId, first.after], [C, 41]);
  // an older page of the chat (another request's) says nothing of what is after 41
  first.answer(historyPage(C, [1, 2]));
  // nor does a page of another chat
  (await read(1)).answer(historyPage(D, [42, 43]));
  const third = await read(2);
  assert.equal(third.after, 41);
  third.answer(historyPage(C, [42, 43]));

  assert.deepEqual(await releasedUpTo(43), [42, 43]);
  order.stop();
});

Deno.test("an empty page read before the held message came is read again, not taken for a hole", async () => {
  const { order, released, read, releasedUpTo } = orderWithScriptedReads();
  order.startAfter(C, 3);
  // the chat list says 4 is new: the order reads after 3
  order.newest(C, 4, true);
  const first = await read(0);
  // 5 comes live (4 was lost on the way) while the read is answered from before 4 was stored
  order.take(C, [storedMessage(C, 5)]);
  first.answer(historyPage(C, []));
  const second = await read(1);
  assert.deepEqual(released, [], "5 waits for 4");
  assert.equal(second.after, 3);
  second.answer(historyPage(C, [4, 5]));

  assert.deepEqual(await releasedUpTo(5), [4, 5]);
  order.stop();
});

Deno.test("messages held with nothing stored before them are released after a read made while they waited", async () => {
  const { order, read, releasedUpTo } = orderWithScriptedReads();
  order.startAfter(C, 1);
  order.take(C, [storedMessage(C, 3)]);
  // seq has no holes, so only history removed from the store can answer this
  (await read(0)).answer(historyPage(C, []));

  assert.deepEqual(await releasedUpTo(3), [3]);
  order.stop();
});

Deno.test("a deletion of a message missed with no gap showing makes the order read it first", async () => {
  const { order, shown, read, releasedUpTo } = orderWithScriptedReads();
  order.startAfter(C, 1);
  order.amend(messageDeleted(C, 2));
  const first = await read(0);
  assert.equal(first.after, 1);
  first.answer(historyPage(C, [2]));

  await releasedUpTo(2);
  assert.deepEqual(shown, ["#2 (deleted)", "message_deleted #2"]);
  order.stop();
});

/** A `messages_read` of chat C by the customer, up to `seq`. */
const readUpTo = (seq: number) => ({
  type: "messages_read" as const,
  chat_id: C,
  reader_id: "cust-1",
  up_to_seq: seq,
  count: 1,
  read_at: "2026-01-01T00:00:05.000Z",
});

Deno.test("a messages_read that comes while held messages are read makes the order read them again, and follows them", async () => {
  const { order, shown, read, releasedUpTo } = orderWithScriptedReads();
  order.startAfter(C, 1);
  order.take(C, [storedMessage(C, 3)]);
  const first = await read(0);
  order.amend(readUpTo(3));
  // read before the mark: the copies are unread
  first.answer(historyPage(C, [2, 3]));
  const second = await read(1);
  assert.equal(second.after, 1);
  assert.deepEqual(shown, [], "nothing released from the stale page, the mark waits");
  const marked = { is_read: true, read_at: readUpTo(3).read_at, updated_at: readUpTo(3).read_at };
  second.answer(historyPage(C, [storedMessage(C, 2, marked), storedMessage(C, 3, marked)]));

  await releasedUpTo(3);
  assert.deepEqual(shown, ["#2 #2 (read)", "#3 #3 (read)", "messages_read up to #3"]);
  order.stop();
});

Deno.test("a messages_read past the newest message is passed on at once, or when the filling ends", async () => {
  const { order, shown, read, shownUpTo } = orderWithScriptedReads();
  order.startAfter(C, 1);
  // a reader may name any seq: with nothing missing there is nothing to wait for
  order.amend(readUpTo(99));
  assert.deepEqual(shown, ["messages_read up to #99"]);

  // while 3 waits for 2 it waits too, and the read made before it is made again
  order.take(C, [storedMessage(C, 3)]);
  order.amend(readUpTo(99));
  (await read(0)).answer(historyPage(C, [2, 3]));
  (await read(1)).answer(historyPage(C, [2, 3]));
  assert.deepEqual(await shownUpTo(4), [
    "messages_read up to #99",
    "#2 #2",
    "#3 #3",
    "messages_read up to #99",
  ]);
  order.stop();
});

Deno.test("a messages_read held when the connection was lost follows the next connection's page", async () => {
  const { order, shown, read, shownUpTo } = orderWithScriptedReads();
  order.startAfter(C, 1);
  order.take(C, [storedMessage(C, 3)]);
  const first = await read(0);
  order.amend(readUpTo(99));
  first.fail(new ConnectionLostError("load_latest_chat"));
  // the next connection opens after the lost one's read has ended (a task later at least)
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(shown, [], "3 still waits for 2, the mark for both");
  // the next connection's first page reaches back far enough: no gap, nothing to read
  order.take(C, [storedMessage(C, 2), storedMessage(C, 3), storedMessage(C, 4)]);

  assert.deepEqual(await shownUpTo(4), ["#2 #2", "#3 #3", "#4 #4", "messages_read up to #99"]);
  order.stop();
});

Deno.test("a message learned of while the read was made is read for again before its gap is announced", async () => {
  const { order, shown, read, shownUpTo } = orderWithScriptedReads();
  order.startAfter(C, 1);
  order.take(C, [storedMessage(C, 3)]);
  const first = await read(0);
  // 5 is stored, its deletion says: the read made before may predate it
  order.amend(messageDeleted(C, 5));
  first.answer(historyPage(C, []));
  const second = await read(1);
  assert.equal(second.after, 1);
  assert.deepEqual(shown, [], "nothing given up on a read older than what it had to find");
  // read after 5 was stored, the store still has nothing: history removed
  second.answer(historyPage(C, []));

  assert.deepEqual(await shownUpTo(4), ["gap #2-#2", "#3 #3", "gap #4-#5", "message_deleted #5"]);
  order.stop();
});

Deno.test("a gap filled in one chat counts filled though another chat's fill skipped a gap meanwhile", async () => {
  const { order, read, releasedUpTo } = orderWithScriptedReads();
  order.startAfter(C, 1);
  order.take(C, [storedMessage(C, 3)]);
  order.startAfter(D, 1);
  order.take(D, [storedMessage(D, 3)]);
  const readOfC = await read(0);
  const readOfD = await read(1);
  assert.deepEqual([readOfC.chatId, readOfD.chatId], [C, D]);
  // C's 2 was removed from the store; D's is there
  readOfC.answer(historyPage(C, [3]));
  await releasedUpTo(3);
  readOfD.answer(historyPage(D, [2, 3]));

  assert.deepEqual(await releasedUpTo(2), [3, 2, 3]);
  assert.deepEqual([order.gapsFilled, order.gapsSkipped], [1, 1]);
  order.stop();
});
