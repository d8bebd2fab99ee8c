import type { Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import type { InsertedMessage, NewMessage } from "../chat/ports.ts";
import { otherSide } from "../chat/types.ts";
import { errorCode, LOCK_NOT_AVAILABLE, UNSTORABLE_TEXT_CODES } from "./errors.ts";
import { lockedChats } from "./locked_chats.ts";
import { bounded, cancelStatement, timedOut } from "./statement_deadline.ts";
import type { createUnreadWindows } from "./unread_windows.ts";
import type { Lane, Pending, PendingRead } from "./writer_lanes.ts";

/**
 * Why a batch may fail for one of its parts, so that each is tried alone: another instance
 * wrote one of its client_ids a moment ago (23505), one message has text the database refuses,
 * one id is malformed (22P02; the edge refuses those already), one names a media row the sweep
 * of unsent media deleted after the send checked it (23503), or the batch and another
 * transaction waited on each other (over a client_id, or read marks of the same messages in
 * another order) and the database failed the batch (40P01), or it waited past lock_timeout for
 * a lock that is not a chat's row (55P03; see afterLockTimeout). Other failures (the database
 * away or too slow) would only fail again, each after as long.
 */
const RETRY_ONE_BY_ONE: ReadonlySet<string> = new Set([
  "22P02",
  "23503",
  "23505",
  "40P01",
  LOCK_NOT_AVAILABLE,
  ...UNSTORABLE_TEXT_CODES,
]);

/** The store's one-at-a-time operations, for what a failed batch held. */
export interface WriterFallbacks {
  /** Once `signal` aborts, answers `unavailable` and never commits. */
  insertOne: (message: NewMessage, signal: AbortSignal) => Promise<InsertedMessage>;
}

/**
 * What the message writer does after a batch failed (the rejection of createBatchWrites'
 * writeMessages or writeReads): the batch is written again without the chats whose rows are held
 * from outside, or each of its items alone when one of them may be at fault, or else it fails
 * whole. Only these paths are given the lanes, to drop what waits for a held chat.
 */
export function createFailedBatches(deps: {
  sql: Sql;
  windows: ReturnType<typeof createUnreadWindows>;
  laneOf: (chatId: string) => Lane;
  writeMessages: (batch: Pending[]) => Promise<void>;
  writeReads: (reads: PendingRead[]) => Promise<void>;
  fallbacks: WriterFallbacks;
}) {
  const { sql, windows, laneOf, writeMessages, writeReads } = deps;
  const { insertOne } = deps.fallbacks;

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
    const locked = await bounded(query, items[0]!.expiresAt, () => cancelStatement(query))
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
    for (let rest = batch; rest.length > 0;) {
      const item = rest[0]!;
      rest = rest.slice(1);
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
        // a chat row held from outside: its chat's other messages are refused with it, not
        // each after a lock wait of its own
        if (rest.length > 0) rest = await afterLockTimeout(rest, failure) ?? rest;
      }
    }
  }

  return { readsFailed, messagesFailed };
}
