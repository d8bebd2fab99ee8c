import type { ReceivedFrameOf, ReceivedMessage } from "./received_frames.ts";

/**
 * A change the server announces to one message it sent before: its deletion, a new text, or
 * its read mark.
 */
export type Amendment =
  | ReceivedFrameOf<"message_deleted">
  | ReceivedFrameOf<"message_edited">
  | ReceivedFrameOf<"message_read">;

/**
 * The read mark of every message addressed to the reader's side up to `up_to_seq`: which
 * messages those are, the client cannot always tell (vendor members), so it is never applied
 * to a copy; held messages are read from the store again instead (see message_order.ts).
 */
export type ReadUpTo = ReceivedFrameOf<"messages_read">;

/** The seq of the message an amendment changes. */
export function amendedSeq(amendment: Amendment): number {
  return amendment.type === "message_edited" ? amendment.message.seq : amendment.seq;
}

/**
 * The later of two copies of one message: a deletion is final (its content is gone);
 * otherwise the one updated last, and `came` on a tie.
 */
export function laterCopy(held: ReceivedMessage, came: ReceivedMessage): ReceivedMessage {
  if (held.deleted !== came.deleted) return held.deleted ? held : came;
  return Date.parse(came.updated_at) >= Date.parse(held.updated_at) ? came : held;
}

/**
 * A message as the application may first see it, given the amendments that came while it
 * was held, in order; and the amendments still to pass on after it. A deletion makes it a
 * tombstone and takes every edit's text with it (its read marks stay); an edit older than the
 * copy is neither applied nor passed on, so older text never follows newer; a read mark makes
 * it read at `read_at`, which the store also makes its `updated_at`.
 */
export function applyAmendments(
  message: ReceivedMessage,
  amendments: readonly Amendment[],
): { message: ReceivedMessage; after: Amendment[] } {
  let current = message;
  let after: Amendment[] = [];
  for (const amendment of amendments) {
    switch (amendment.type) {
      case "message_deleted":
        current = {
          ...current,
          deleted: true,
          content: null,
          media_url: null,
          updated_at: amendment.deleted_at,
        };
        after = [...after.filter((earlier) => earlier.type === "message_read"), amendment];
        continue;
      case "message_read":
        if (!current.is_read) {
          const updatedAt = Date.parse(amendment.read_at) > Date.parse(current.updated_at)
            ? amendment.read_at
            : current.updated_at;
          current = {
            ...current,
            is_read: true,
            read_at: amendment.read_at,
            updated_at: updatedAt,
          };
        }
        after.push(amendment);
        continue;
      case "message_edited": {
        const next = laterCopy(current, amendment.message);
        if (next === current) continue;
        current = next;
        after.push(amendment);
      }
    }
  }
  return { message: current, after };
}
