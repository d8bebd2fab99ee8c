import type { UnreadSummary } from "./events.ts";
import type { ChatStore, UnreadSnapshot } from "./ports.ts";
import { type Side, type StoredMessage, UNREAD_PREVIEW_LIMIT } from "./types.ts";

/**
 * How long a change that owes the receiver side an unread push (a new message, a deletion of an
 * unread one) waits for the side's unread snapshot, when it has none: the change is answered
 * without it (its push skipped, the next one whole), and a store that takes longer is failing.
 * Waited for to the store timeout, a message stored just as the database stalled was answered a
 * second store timeout later (9.5 s), past what clients wait for a reply (10 s in client/).
 */
const UNREAD_SNAPSHOT_WAIT_MS = 1_000;

/**
 * The side's unread read from the store after a change (`after`: "a send", "a deletion"), or
 * undefined past UNREAD_SNAPSHOT_WAIT_MS or on a failure (reported to `onError`).
 */
export async function unreadSnapshotSoon(
  deps: { store: ChatStore; onError?: ((error: unknown, context: string) => void) | undefined },
  owed: { chatId: string; side: Side; after: string },
): Promise<UnreadSnapshot | undefined> {
  const { chatId, side, after } = owed;
  const read = deps.store.unread(chatId, side, UNREAD_PREVIEW_LIMIT).catch((error) => {
    deps.onError?.(error, `unread snapshot after ${after}`);
    return undefined;
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const givenUp = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, UNREAD_SNAPSHOT_WAIT_MS, undefined);
  });
  try {
    return await Promise.race([read, givenUp]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What a chat event carries for the unread push it owes `side` (see feed.ts): the summary that
 * travels on the bus, and beside it the client JSON of its messages, for this instance's own push.
 */
export function owedUnreadPush(
  side: Side,
  snapshot: UnreadSnapshot,
  jsonOf: (message: StoredMessage) => string,
): { unread: UnreadSummary; unreadMessages: string[] } {
  return {
    unread: { side, count: snapshot.count, seqs: snapshot.messages.map((message) => message.seq) },
    unreadMessages: snapshot.messages.map(jsonOf),
  };
}
