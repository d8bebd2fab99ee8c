import type { Message, ServerFrameOf } from "../protocol/mod.ts";

/** A change the server announces to a message it sent before: its deletion, or a new text. */
export type Amendment = ServerFrameOf<"message_deleted"> | ServerFrameOf<"message_edited">;

/** The seq of the message an amendment changes. */
export function amendedSeq(amendment: Amendment): number {
  return amendment.type === "message_deleted" ? amendment.seq : amendment.message.seq;
}

/**
 * The later of two copies of one message: a deletion is final (its content is gone);
 * otherwise the one updated last, and `came` on a tie.
 */
export function laterCopy(held: Message, came: Message): Message {
  if (held.deleted !== came.deleted) return held.deleted ? held : came;
  return Date.parse(came.updated_at) >= Date.parse(held.updated_at) ? came : held;
}

/**
 * A message as the application may first see it, given the amendments that came while it
 * was held, in order; and the amendments still to pass on after it. A deletion makes it a
 * tombstone and takes every edit's text with it; an edit older than the copy is neither
 * applied nor passed on, so older text never follows newer.
 */
export function applyAmendments(
  message: Message,
  amendments: readonly Amendment[],
): { message: Message; after: Amendment[] } {
  let current = message;
  let after: Amendment[] = [];
  for (const amendment of amendments) {
    if (amendment.type === "message_deleted") {
      current = {
        ...current,
        deleted: true,
        content: null,
        media_url: null,
        updated_at: amendment.deleted_at,
      };
      after = [amendment];
      continue;
    }
    const next = laterCopy(current, amendment.message);
    if (next === current) continue;
    current = next;
    after.push(amendment);
  }
  return { message: current, after };
}
