import type { Sql } from "postgres";
import { STORE_TIMEOUT_MS } from "./errors.ts";
import { CANCEL_AHEAD_MS, timedOut } from "./statement_deadline.ts";
import type { InsertedMessage, NewMessage } from "../chat/ports.ts";
import type { ReadMark } from "./read_batch.ts";
import { createUnreadWindows, type ReadsCommitted } from "./unread_windows.ts";
import { createBatchWrites } from "./batch_writes.ts";
import { createFailedBatches, type WriterFallbacks } from "./failed_batches.ts";
import { type Lane, type ReadResult, WRITER_LANES, writerLaneOf } from "./writer_lanes.ts";

const MAX_BATCH = 500;

/**
 * Group commit: messages arriving while a batch is being written go together into the next
 * one, a single statement committed on its own; read marks likewise, in a statement before it.
 * Per chat, seq is taken in arrival order under the chat's row lock. Each result carries the
 * receiver side's unread snapshot, kept from a per-chat window that follows this writer's own
 * inserts and reads and is read again only when something else changed it (tracked by the
 * chat's last_seq and unread_epoch). A batch's statements are in batch_writes.ts, what follows
 * a failed one in failed_batches.ts.
 */
export function createMessageWriter(sql: Sql, fallbacks: WriterFallbacks) {
  // Chats are spread over a few lanes, each writing one batch at a time: the database works
  // on one batch while the results of another are being handed out. A chat stays in its lane,
  // so its messages are written in arrival order.
  const lanes: Lane[] = Array.from(
    { length: WRITER_LANES },
    () => ({ queue: [], reads: [], writing: false }),
  );
  const laneOf = (chatId: string) => lanes[writerLaneOf(chatId)]!;
  const windows = createUnreadWindows();
  const { writeMessages, writeReads } = createBatchWrites(sql, windows);
  const { readsFailed, messagesFailed } = createFailedBatches({
    sql,
    windows,
    laneOf,
    writeMessages,
    writeReads,
    fallbacks,
  });

  /**
   * What waited past its time behind a batch the database was slow to answer is answered
   * `unavailable` and dropped, not written after its sender was told it failed: the sender's
   * retry stores it.
   */
  function dropExpired(lane: Lane): void {
    const now = performance.now();
    for (const item of [...lane.queue, ...lane.reads]) {
      if (item.expiresAt <= now) item.reject(timedOut());
    }
    lane.queue = lane.queue.filter((item) => item.expiresAt > now);
    lane.reads = lane.reads.filter((item) => item.expiresAt > now);
  }

  async function drain(lane: Lane): Promise<void> {
    lane.writing = true;
    try {
      for (;;) {
        // Each batch is one statement, committed on its own: one round trip. Marks first, as
        // they came before the messages waiting behind them.
        dropExpired(lane);
        const reads = lane.reads.splice(0, MAX_BATCH);
        // Messages are taken once the marks are written: marks that met a chat row held from
        // outside refused that chat's waiting messages too, which must not wait for it again.
        if (reads.length > 0) {
          await writeReads(reads).catch((error) => readsFailed(reads, error));
          dropExpired(lane);
        }
        const batch = lane.queue.splice(0, MAX_BATCH);
        if (batch.length === 0 && reads.length === 0) break;
        if (batch.length > 0) {
          await writeMessages(batch).catch((error) => messagesFailed(batch, error));
        }
      }
    } finally {
      lane.writing = false;
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

    /**
     * Stores a message with the next seq of its chat. `forbidden` when the sender is banned or
     * not in the chat (its customer, its vendor or a member of its vendor).
     */
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
