import type { Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import { otherSide, type Side, type StoredMessage } from "../chat/types.ts";
import { bounded, cancelStatement } from "./statement_deadline.ts";
import {
  batchMessage,
  type DuplicateRow,
  insertMessageBatch,
  readMessageRows,
} from "./insert_batch.ts";
import { type ChatAfterRead, markReadBatch, type ReadRow } from "./read_batch.ts";
import { toStoredMessage } from "./rows.ts";
import { answerBatch, type NewlyWritten, type WrittenBatch } from "./batch_answers.ts";
import {
  type createUnreadWindows,
  readUnreadWindows,
  type UnreadWindow,
} from "./unread_windows.ts";
import type { Pending, PendingRead } from "./writer_lanes.ts";

/**
 * The message writer's statements for one batch, and how each of its items is answered: messages
 * in one statement (insertMessageBatch) and read marks in another (markReadBatch). `windows` are
 * the writer's unread windows, kept as each batch leaves its chats. A batch that fails rejects
 * the returned promise and answers nothing: see createFailedBatches.
 */
export function createBatchWrites(
  sql: Sql,
  windows: ReturnType<typeof createUnreadWindows>,
) {
  async function writeMessages(batch: Pending[]): Promise<void> {
    // the same client_id twice in one batch: the first one writes, the others repeat it
    const firstByKey = new Map<string, number>();
    const followers = new Map<number, number[]>();
    const unique: Pending[] = [];
    batch.forEach((item, position) => {
      const { chat_id, sender_id, client_id } = item.message;
      const key = client_id === null ? null : `${chat_id}\u0000${sender_id}\u0000${client_id}`;
      const first = key === null ? undefined : firstByKey.get(key);
      if (first !== undefined) {
        // followers are positions in the batch, where they are answered from below
        followers.set(first, [...(followers.get(first) ?? []), position]);
        return;
      }
      if (key !== null) firstByKey.set(key, unique.length);
      unique.push(item);
    });

    const results = answerBatch(await insertMessages(unique), windows);
    unique.forEach((item, index) => {
      const result = results.get(index + 1) ??
        new ChatError("forbidden", "you may not send to this chat");
      const repeats = (followers.get(index) ?? []).map((follower) => batch[follower]!);
      if (result instanceof ChatError) {
        for (const failed of [item, ...repeats]) failed.reject(result);
        return;
      }
      item.resolve(result);
      for (const repeated of repeats) {
        repeated.resolve({ ...result, duplicate: true, receiver_unread: null });
      }
    });
  }

  /**
   * Marks a batch of messages read, then answers each mark; of the marks of one message, at
   * most one changed it (see markReadBatch).
   */
  async function writeReads(reads: PendingRead[]): Promise<void> {
    const query = markReadBatch(sql, reads.map((item) => item.mark));
    const rows = await bounded(query, reads[0]!.expiresAt, () => cancelStatement(query));
    for (const [chatId, { after, ids }] of marksByChat(rows)) {
      windows.apply(windows.afterRead(chatId, { after, wasRead: (m) => ids.has(m.id) }));
    }
    const byOrd = new Map(rows.map((row) => [row.ord, row]));
    reads.forEach((item, index) => {
      const row = byOrd.get(index + 1);
      if (!row) return item.resolve(null);
      item.resolve({ message: toStoredMessage(row), changed: row.changed });
    });
  }

  /**
   * Writes a batch's messages, then reads again the unread windows of the sides they went to
   * whose window was not exact for the chat as the batch found it. That read may see later
   * changes too: each window comes with the chat state it is exact for. The exact ones are
   * returned as they were: a read up to a seq may replace or drop them meanwhile.
   */
  async function insertMessages(unique: readonly Pending[]): Promise<WrittenBatch> {
    // the oldest message is the first: the batch is cancelled when its time is up
    const cancelAt = unique[0]!.expiresAt;
    const query = insertMessageBatch(sql, unique.map((item) => item.message));
    const rows = await bounded(query, cancelAt, () => cancelStatement(query));
    const duplicateRows: DuplicateRow[] = [];
    const byChat = new Map<string, NewlyWritten[]>();
    for (const row of rows.sort((a, b) => a.ord - b.ord)) {
      if (row.duplicate) {
        duplicateRows.push(row);
        continue;
      }
      const message = batchMessage(row, unique[row.ord - 1]!.message);
      const list = byChat.get(message.chat_id) ?? [];
      list.push({
        ord: row.ord,
        message,
        base: row.base,
        epoch: row.epoch,
        customerUnread: row.customer_unread,
        vendorUnread: row.vendor_unread,
      });
      byChat.set(message.chat_id, list);
    }
    const duplicates = await readDuplicates(duplicateRows, cancelAt);
    const exact = new Map<string, UnreadWindow>();
    const stale = new Map<string, { chatId: string; side: Side }>();
    for (const [chatId, list] of byChat) {
      const first = list[0]!;
      for (const side of new Set(list.map((row) => otherSide(row.message.sender_side)))) {
        const window = windows.get(`${chatId}:${side}`);
        if (window && window.epoch === first.epoch && window.lastSeq === first.base) {
          exact.set(`${chatId}:${side}`, window);
        } else stale.set(`${chatId}:${side}`, { chatId, side });
      }
    }
    if (stale.size === 0) return { duplicates, byChat, exact, reread: new Map() };
    // null: not known (the statement has committed, so its messages are answered anyway)
    const unknown = new Map([...stale.keys()].map((key) => [key, null]));
    // past the time, a read would answer the senders only after STORE_TIMEOUT_MS had
    if (performance.now() >= cancelAt) return { duplicates, byChat, exact, reread: unknown };
    try {
      const reread = await bounded(readUnreadWindows(sql, [...stale.values()]), cancelAt);
      return { duplicates, byChat, exact, reread };
    } catch {
      return { duplicates, byChat, exact, reread: unknown };
    }
  }

  /**
   * The earlier messages of a batch's duplicates, read whole. They are rare (a client sending
   * again what it was not answered), and their senders, all with a client_id, may send again:
   * a failed read fails only them.
   */
  async function readDuplicates(rows: readonly DuplicateRow[], cancelAt: number) {
    if (rows.length === 0) return [];
    const query = readMessageRows(sql, rows.map((row) => row.id));
    const stored = await bounded(query, cancelAt, () => cancelStatement(query)).then(
      (read) => new Map(read.map((row) => [row.id, toStoredMessage(row)])),
      () => new Map<string, StoredMessage>(),
    );
    return rows.map((row) => ({ ord: row.ord, message: stored.get(row.id) ?? null }));
  }

  return { writeMessages, writeReads };
}

/** The chats a batch's read marks changed: how each was left, and the messages marked. */
function marksByChat(rows: readonly ReadRow[]) {
  const byChat = new Map<string, { after: ChatAfterRead; ids: Set<string> }>();
  for (const row of rows) {
    if (!row.changed) continue;
    const chat = byChat.get(row.chat_id);
    if (chat) chat.ids.add(row.id);
    else byChat.set(row.chat_id, { after: row, ids: new Set([row.id]) });
  }
  return byChat;
}
