import type { Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import {
  errorCode,
  LOCK_NOT_AVAILABLE,
  STORE_TIMEOUT_MS,
  UNSTORABLE_TEXT_CODES,
} from "./errors.ts";
import { lockedChats } from "./locked_chats.ts";
import { bounded, CANCEL_AHEAD_MS, timedOut } from "./statement_deadline.ts";
import type { InsertedMessage, NewMessage } from "../chat/ports.ts";
import { otherSide, type Side, type StoredMessage } from "../chat/types.ts";
import {
  batchMessage,
  type DuplicateRow,
  insertMessageBatch,
  readMessageRows,
} from "./insert_batch.ts";
import { type ChatAfterRead, markReadBatch, type ReadMark, type ReadRow } from "./read_batch.ts";
import { toStoredMessage } from "./rows.ts";
import { answerBatch, type NewlyWritten, type WrittenBatch } from "./batch_answers.ts";
import {
  createUnreadWindows,
  type ReadsCommitted,
  readUnreadWindows,
  type UnreadWindow,
} from "./unread_windows.ts";

const MAX_BATCH = 500;

/**
 * Why a batch may fail for one of its parts, so that each is tried alone: another instance
 * wrote one of its client_ids a moment ago (23505), one message has text the database refuses,
 * one id is malformed (22P02; the edge refuses those already), or the batch and another
 * transaction waited on each other (over a client_id, or read marks of the same messages in
 * another order) and the database failed the batch (40P01), or it waited past lock_timeout for
 * a lock that is not a chat's row (55P03; see afterLockTimeout). Other failures (the database
 * away or too slow) would only fail again, each after as long.
 */
const RETRY_ONE_BY_ONE: ReadonlySet<string> = new Set([
  "22P02",
  "23505",
  "40P01",
  LOCK_NOT_AVAILABLE,
  ...UNSTORABLE_TEXT_CODES,
]);

/** Batches written at the same time, each by its own connection. */
export const WRITER_LANES = 2;

/** The lane a chat's messages and read marks are written in, always the same one. */
export const writerLaneOf = (chatId: string): number =>
  Number.parseInt(chatId.slice(0, 8), 16) % WRITER_LANES;

interface Lane {
  queue: Pending[];
  /** Read marks, written in one statement before the next batch of messages. */
  reads: PendingRead[];
  writing: boolean;
}

interface Pending {
  message: NewMessage;
  resolve: (result: InsertedMessage) => void;
  reject: (error: unknown) => void;
  /** performance.now() after which it is not written, and its batch's statement is cancelled. */
  expiresAt: number;
}

interface PendingRead {
  mark: ReadMark;
  resolve: (result: ReadResult) => void;
  reject: (error: unknown) => void;
  expiresAt: number;
}

/** What `markRead` answers: the message and whether this mark changed it; null: unknown. */
export type ReadResult = { message: StoredMessage; changed: boolean } | null;

/** The store's one-at-a-time operations, for what a failed batch held. */
export interface WriterFallbacks {
  /** Once `signal` aborts, answers `unavailable` and never commits. */
  insertOne: (message: NewMessage, signal: AbortSignal) => Promise<InsertedMessage>;
}

/**
 * Group commit: messages arriving while a batch is being written go together into the next
 * one, a single statement committed on its own; read marks likewise, in a statement before it.
 * Per chat, seq is taken in arrival order under the chat's row lock. Each result carries the
 * receiver side's unread snapshot, kept from a per-chat window that follows this writer's own
 * inserts and reads and is read again only when something else changed it (tracked by the
 * chat's last_seq and unread_epoch).
 */
export function createMessageWriter(sql: Sql, fallbacks: WriterFallbacks) {
  const { insertOne } = fallbacks;
  // Chats are spread over a few lanes, each writing one batch at a time: the database works
  // on one batch while the results of another are being handed out. A chat stays in its lane,
  // so its messages are written in arrival order.
  const lanes: Lane[] = Array.from(
    { length: WRITER_LANES },
    () => ({ queue: [], reads: [], writing: false }),
  );
  const laneOf = (chatId: string) => lanes[writerLaneOf(chatId)]!;
  const windows = createUnreadWindows();

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
    const rows = await bounded(query, reads[0]!.expiresAt, () => query.cancel());
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
    const rows = await bounded(query, cancelAt, () => query.cancel());
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
    const stored = await bounded(query, cancelAt, () => query.cancel()).then(
      (read) => new Map(read.map((row) => [row.id, toStoredMessage(row)])),
      () => new Map<string, StoredMessage>(),
    );
    return rows.map((row) => ({ ord: row.ord, message: stored.get(row.id) ?? null }));
  }

  async function drain(lane: Lane): Promise<void> {
    lane.writing = true;
    try {
      for (;;) {
        // What waited past its time behind a batch the database was slow to answer is answered
        // `unavailable` and dropped, not written after its sender was told it failed: the
        // sender's retry stores it.
        const now = performance.now();
        for (const item of [...lane.queue, ...lane.reads]) {
          if (item.expiresAt <= now) item.reject(timedOut());
        }
        lane.queue = lane.queue.filter((item) => item.expiresAt > now);
        lane.reads = lane.reads.filter((item) => item.expiresAt > now);
        const batch = lane.queue.splice(0, MAX_BATCH);
        const reads = lane.reads.splice(0, MAX_BATCH);
        if (batch.length === 0 && reads.length === 0) break;
        // Each batch is one statement, committed on its own: one round trip. Marks first, as
        // they came before the messages waiting behind them.
        if (reads.length > 0) await writeReads(reads).catch((error) => readsFailed(reads, error));
        if (batch.length > 0) {
          await writeMessages(batch).catch((error) => messagesFailed(batch, error));
        }
      }
    } finally {
      lane.writing = false;
    }
  }

  /** After a batch of read marks failed: without a locked chat's, or each alone. */
  async function readsFailed(reads: PendingRead[], error: unknown): Promise<void> {
    const rest = await afterLockTimeout(reads, error);
    if (rest) {
      if (rest.length > 0) await writeReads(rest).catch((again) => readsFailed(rest, again));
      return;
    }
    if (!RETRY_ONE_BY_ONE.has(errorCode(error))) {
      for (const item of reads) item.reject(error);
      return;
    }
    // each mark alone, so that only a failing one fails
    for (const item of reads) await writeReads([item]).catch(item.reject);
  }

  /** After a batch of messages failed: without a locked chat's, or each alone. */
  async function messagesFailed(batch: Pending[], error: unknown): Promise<void> {
    const rest = await afterLockTimeout(batch, error);
    if (!rest) return writeOneByOne(batch, error);
    if (rest.length > 0) await writeMessages(rest).catch((again) => messagesFailed(rest, again));
  }

  /**
   * After a batch waited past lock_timeout: the chat rows held from outside are found, and
   * everything of those chats, in the batch and waiting in its lane, is answered `unavailable`
   * (the sender may retry; nothing of it was written). What remains of the batch is returned to
   * be written again at once; undefined when it is not a lock timeout or no chat row is held
   * (the lock was elsewhere, or is gone).
   */
  async function afterLockTimeout<T extends Pending | PendingRead>(
    items: T[],
    error: unknown,
  ): Promise<T[] | undefined> {
    if (errorCode(error) !== LOCK_NOT_AVAILABLE) return undefined;
    const chatOf = (item: Pending | PendingRead) =>
      "message" in item ? item.message.chat_id : item.mark.chat_id;
    const query = lockedChats(sql, [...new Set(items.map(chatOf))]);
    const locked = await bounded(query, items[0]!.expiresAt, () => query.cancel())
      .then((rows) => new Set(rows.map((row) => row.id)), () => new Set<string>());
    if (locked.size === 0) return undefined;
    const refused = new ChatError("unavailable", "the chat is being changed, retry", {
      cause: error,
    });
    const lane = laneOf(chatOf(items[0]!));
    const keep = (item: Pending | PendingRead) => {
      if (!locked.has(chatOf(item))) return true;
      item.reject(refused);
      return false;
    };
    lane.queue = lane.queue.filter(keep);
    lane.reads = lane.reads.filter(keep);
    return items.filter(keep);
  }

  /** After a batch failed: its messages alone, so that only the one at fault fails. */
  async function writeOneByOne(batch: Pending[], error: unknown): Promise<void> {
    if (!RETRY_ONE_BY_ONE.has(errorCode(error))) {
      for (const item of batch) item.reject(error);
      return;
    }
    for (const item of batch) {
      if (item.expiresAt <= performance.now()) {
        item.reject(timedOut());
        continue;
      }
      try {
        // given up at the item's time like a batch, so that it is not stored after its sender
        // was answered
        const giveUp = new AbortController();
        const result = await bounded(
          insertOne(item.message, giveUp.signal),
          item.expiresAt,
          () => giveUp.abort(),
        );
        // no snapshot: the caller reads it (the message is stored whatever that read does)
        if (!result.duplicate) {
          windows.forget(`${item.message.chat_id}:${otherSide(item.message.sender_side)}`);
        }
        item.resolve(result);
      } catch (failure) {
        item.reject(failure);
      }
    }
  }

  function enqueue(chatId: string, add: (lane: Lane) => void): void {
    const lane = laneOf(chatId);
    add(lane);
    if (!lane.writing) void drain(lane);
  }

  return {
    /** Read marks committed outside a batch: see UnreadWindows.afterRead. */
    noteRead(chatId: string, reads: ReadsCommitted) {
      windows.apply(windows.afterRead(chatId, reads));
    },

    /** Stores a message with the next seq of its chat. `forbidden` when the sender is banned. */
    insert(message: NewMessage): Promise<InsertedMessage> {
      return new Promise((resolve, reject) => {
        const expiresAt = performance.now() + STORE_TIMEOUT_MS - CANCEL_AHEAD_MS;
        enqueue(
          message.chat_id,
          (lane) => lane.queue.push({ message, resolve, reject, expiresAt }),
        );
      });
    },

    /** Marks a message read, in the chat's next batch (see markReadBatch). */
    read(mark: ReadMark): Promise<ReadResult> {
      return new Promise((resolve, reject) => {
        const expiresAt = performance.now() + STORE_TIMEOUT_MS - CANCEL_AHEAD_MS;
        enqueue(mark.chat_id, (lane) => lane.reads.push({ mark, resolve, reject, expiresAt }));
      });
    },
  };
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
