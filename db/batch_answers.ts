import { ChatError } from "../chat/errors.ts";
import type { InsertedMessage, UnreadSnapshot } from "../chat/ports.ts";
import { otherSide, type StoredMessage, UNREAD_PREVIEW_LIMIT } from "../chat/types.ts";
import type { createUnreadWindows, UnreadState, UnreadWindow } from "./unread_windows.ts";

/** A new message of a batch as written, with its chat as the statement left it. */
export interface NewlyWritten {
  ord: number;
  message: StoredMessage;
  /** The chat's seq before the batch. */
  base: number;
  epoch: number;
  customerUnread: number;
  vendorUnread: number;
}

/** A batch of messages as the writer's statement left it. */
export interface WrittenBatch {
  /** Messages whose client_id wrote one before: that one, whole; null: it could not be read. */
  duplicates: Array<{ ord: number; message: StoredMessage | null }>;
  /** The new messages by chat, in the batch's order. */
  byChat: Map<string, NewlyWritten[]>;
  /** The receiving sides' windows that were exact for the chat as the batch found it. */
  exact: Map<string, UnreadWindow>;
  /** The other receiving sides' windows, read again after the batch; null: not known. */
  reread: Map<string, UnreadState | null>;
}

/**
 * What each message of a written batch is answered, by its `ord`: a new one with the receiver
 * side's unread snapshot, a duplicate with the message its client_id wrote before. `windows`
 * are left as the batch left the chats: a window read again is kept, an exact one gets the
 * batch's messages, an unknown one is forgotten (its senders' callers read the snapshot).
 */
export function answerBatch(
  batch: WrittenBatch,
  windows: ReturnType<typeof createUnreadWindows>,
): Map<number, InsertedMessage | ChatError> {
  const { duplicates, byChat, exact, reread } = batch;
  const results = new Map<number, InsertedMessage | ChatError>();
  for (const { ord, message } of duplicates) {
    results.set(
      ord,
      message
        ? { message, duplicate: true, receiver_unread: null }
        : new ChatError("unavailable", "the message sent before could not be read"),
    );
  }
  // keep the windows read again, and add this batch's messages to the exact ones
  for (const [chatId, list] of byChat) {
    const last = list[list.length - 1]!;
    const lastSeq = last.base + list.length;
    const receiving = new Set(list.map((row) => otherSide(row.message.sender_side)));
    // A side that received nothing in this batch keeps an exact window exact: only the
    // chat's seq moved on.
    for (const side of ["customer", "vendor"] as const) {
      const window = windows.get(`${chatId}:${side}`);
      if (receiving.has(side) || !window) continue;
      if (window.epoch === last.epoch && window.lastSeq === last.base) window.lastSeq = lastSeq;
    }
    for (const side of receiving) {
      const key = `${chatId}:${side}`;
      const state = reread.get(key);
      let unread: UnreadSnapshot | null;
      if (state) {
        windows.remember(key, state);
        unread = { count: state.count, messages: state.messages };
      } else if (state === null) {
        // the messages are stored: they are answered, and the caller reads the snapshot
        windows.forget(key);
        unread = null;
      } else {
        const added = list.map((row) => row.message)
          .filter((message) => otherSide(message.sender_side) === side);
        // every receiving side is either read again or was exact when the batch was written
        const messages = [...exact.get(key)!.messages, ...added].slice(-UNREAD_PREVIEW_LIMIT);
        windows.remember(key, { epoch: last.epoch, lastSeq, messages });
        const count = side === "customer" ? last.customerUnread : last.vendorUnread;
        unread = { count, messages };
      }
      for (const row of list) {
        if (otherSide(row.message.sender_side) !== side) continue;
        results.set(row.ord, { message: row.message, duplicate: false, receiver_unread: unread });
      }
    }
  }
  return results;
}
