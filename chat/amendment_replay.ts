import { createDeliveredAmendments } from "./delivered_amendments.ts";
import { DeliveredReads } from "./delivered_reads.ts";
import type { ChatEnvelope, ChatFrame } from "./events.ts";
import type { ChatStore, ReadTally, RecentWindow, StoredRead } from "./ports.ts";
import type { Message, StoredMessage } from "./types.ts";

/** Between attempts of a replay the store did not answer. */
const RETRY_AFTER_MS = 2_000;
/**
 * The most read marks one read of a replay takes (the newest): each is an event of its own. A
 * chat with more in the window has its older ones left out.
 */
export const MAX_REPLAYED_READS = 10_000;
/**
 * Chats whose marks are read together, up to this many marks by the store's tally: half a read,
 * as marks made between the tally and the read come too.
 */
const READS_PER_BATCH = MAX_REPLAYED_READS / 2;

/**
 * Amendments lost on the bus while an instance was cut off from NATS (its own, to the others;
 * the others', to it), sent again from the store: edits, deletions and read marks. Unlike
 * messages they have no seq that shows the gap, so after a reconnect every instance reads the
 * messages of the chats it follows amended within the outage and delivers what it has not
 * delivered yet: `message_deleted`, `message_edited` with the current text, and `message_read`
 * for each message read (a `messages_read` becomes one per message it marked). The feed's sweep
 * does the same each period for a recent window (`sweep`), for those whose publish was lost
 * without an outage.
 */
export function createAmendmentReplay(deps: {
  store: Pick<ChatStore, "amendedWithin" | "readWithin" | "readTallies" | "getChats">;
  /**
   * The chats whose events this instance delivers, each with when it began to (this clock):
   * what was amended before that went to no socket here, which all read the chat later.
   */
  followed: () => ReadonlyMap<string, number>;
  /**
   * Hands a replayed event about message `seq`, made at `amendedAt` (the store's clock), on, to
   * go out in line with the chat's other events, to the sockets that were there when it was
   * made; `stillOwed` says, when it may go out, whether the sockets still lack it.
   */
  deliver: (
    chatId: string,
    seq: number,
    envelope: ChatEnvelope,
    stillOwed: () => boolean,
    amendedAt: number,
  ) => void;
  onError: (error: unknown, context: string) => void;
  /**
   * Told of how many chats a sweep reads the read marks, their tallies differing although this
   * instance followed them through the whole window: a mark was lost, or came very late.
   */
  onReadTalliesDiffering?: ((chats: number) => void) | undefined;
  retryAfterMs?: number;
}) {
  const { store, onError } = deps;
  const retryAfterMs = deps.retryAfterMs ?? RETRY_AFTER_MS;
  /** The earliest time (this clock) amendments are owed from, while a replay is owed. */
  let owedFrom: number | undefined;
  let running: Promise<void> | undefined;
  const memory = createDeliveredAmendments();
  /** The frames this replay made: they carry the store's state of their message. */
  const replayedFrames = new WeakSet<ChatFrame>();
  /** The read marks delivered by time, for the sweeps' tallies. */
  const deliveredReads = new DeliveredReads();
  const pauses = new Set<() => void>();
  let closed = false;

  /**
   * The chats of `chatIds` whose read marks of `window` are to be read, in batches of at most
   * READS_PER_BATCH marks by the store's tally (a chat with more goes alone): every chat with
   * marks, or (for a sweep) only those whose tally differs from the marks delivered here.
   */
  async function chatsWithReadsOwed(
    followed: ReadonlyMap<string, number>,
    window: RecentWindow,
    which: "all" | "untallied",
  ): Promise<string[][]> {
    const chatIds = [...followed.keys()];
    const { fromMs, toMs, chats } = await store.readTallies(chatIds, window);
    if (which === "all") return inBatches(chats);
    // the next window begins later: what is before this one is not asked for again
    deliveredReads.forget(fromMs, new Set(chatIds));
    const differing = chats.filter((stored) =>
      !sameTally(stored, deliveredReads.tally(stored.chat_id, fromMs, toMs))
    );
    // a chat followed since the window began lacks the marks made before: no sign of a loss
    const followedThroughout = differing.filter(({ chat_id }) => followed.get(chat_id)! <= fromMs);
    if (followedThroughout.length > 0) deps.onReadTalliesDiffering?.(followedThroughout.length);
    return inBatches(differing);
  }

  /**
   * Hands on what the sockets lack of `window`'s edits, deletions and read marks (of `which`
   * chats); resolves with how many.
   */
  async function replayOnce(window: RecentWindow, which: "all" | "untallied"): Promise<number> {
    const followed = deps.followed();
    const chatIds = [...followed.keys()];
    if (chatIds.length === 0) return 0;
    const [amended, readBatches] = await Promise.all([
      store.amendedWithin(chatIds, window),
      chatsWithReadsOwed(followed, window, which),
    ]);
    let handedOn = await handOn(followed, amended, []);
    for (const batch of readBatches) {
      const reads = await store.readWithin(batch, window, MAX_REPLAYED_READS);
      if (reads.length === MAX_REPLAYED_READS) {
        onError(
          new Error(
            `more than ${MAX_REPLAYED_READS} read marks of a chat to replay: the older are not sent`,
          ),
          "replay amendments",
        );
      }
      handedOn += await handOn(followed, [], reads);
    }
    return handedOn;
  }

  /** Hands on the events of `amended` and `reads` that the sockets lack; resolves with how many. */
  async function handOn(
    followed: ReadonlyMap<string, number>,
    amended: readonly StoredMessage[],
    reads: readonly StoredRead[],
  ): Promise<number> {
    if (amended.length === 0 && reads.length === 0) return 0;
    const chatIdsAmended = new Set([...amended, ...reads].map((event) => event.chat_id));
    const chats = await store.getChats([...chatIdsAmended]);
    const participants = new Map(chats.map((chat) => [chat.id, chat]));
    let handedOn = 0;
    const replay = (
      event: { chat_id: string; seq: number },
      at: string,
      missing: () => ChatFrame | null,
    ) => {
      const chat = participants.get(event.chat_id);
      const madeAt = Date.parse(at);
      if (!chat || madeAt < (followed.get(event.chat_id) ?? Infinity)) return;
      const frame = missing();
      if (!frame) return;
      replayedFrames.add(frame);
      handedOn++;
      deps.deliver(
        event.chat_id,
        event.seq,
        {
          chat: { user_id: chat.user_id, vendor_id: chat.vendor_id },
          audience: { to: "all" },
          frame,
          sent_at: Date.now(),
        },
        () => missing() !== null,
        madeAt,
      );
    };
    for (const message of amended) {
      replay(message, amendedAt(message), () => memory.missingEvent(message));
    }
    for (const read of reads) replay(read, read.read_at, () => memory.missingRead(read));
    return handedOn;
  }

  async function replayOwed() {
    let failures = 0;
    while (owedFrom !== undefined && !closed) {
      const from = owedFrom;
      owedFrom = undefined;
      try {
        await replayOnce({ withinMs: Date.now() - from }, "all");
        failures = 0;
      } catch (error) {
        if (failures++ === 0) onError(error, "replay amendments");
        owedFrom = Math.min(owedFrom ?? Infinity, from);
        if (!closed) await pause();
      }
    }
  }

  /** Waits before the next attempt; close() ends the wait at once. */
  function pause(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(() => {
      pauses.delete(wake);
      resolve();
    }, retryAfterMs);
    const wake = () => {
      clearTimeout(timer);
      resolve();
    };
    pauses.add(wake);
    return promise;
  }

  return {
    /**
     * Notes an event as it is delivered: an amendment it carries is not replayed. `upToMarked`:
     * its envelope's `up_to_marked` (a `messages_read` that says the newest message it marked).
     */
    delivered(frame: ChatFrame | { type: "unread_messages" }, upToMarked = false): void {
      if (frame.type === "message_read") {
        deliveredReads.add(frame.chat_id, Date.parse(frame.read_at), 1);
      } else if (frame.type === "messages_read") {
        deliveredReads.add(frame.chat_id, Date.parse(frame.read_at), frame.count);
      }
      memory.note(
        frame,
        frame.type !== "unread_messages" && replayedFrames.has(frame),
        upToMarked,
      );
    },

    /** See DeliveredAmendments.readSince. */
    readSince(message: Message, customerId: string): string | undefined {
      return memory.readSince(message, customerId);
    },

    /** Notes a message delivered from the store: its amendments so far came with it. */
    deliveredStored(message: StoredMessage): void {
      memory.noteStored(message);
    },

    /**
     * True when a live edit, deletion or read mark is one a replay already sent (its publish
     * delayed on the bus past a sweep), or older than what went out: it is not sent again.
     */
    alreadyDelivered(frame: ChatFrame | { type: "unread_messages" }): boolean {
      return memory.alreadyDelivered(frame);
    },

    /**
     * Replays the amendments of the last `withinMs`. Requests that come while one runs are
     * merged into one window; a store that does not answer is asked again until it does (over
     * a window grown by the wait), reported once. Never rejects; settles when nothing is owed.
     */
    request(withinMs: number): Promise<void> {
      owedFrom = Math.min(owedFrom ?? Infinity, Date.now() - withinMs);
      running ??= replayOwed().finally(() => (running = undefined));
      return running;
    },

    /**
     * Replays the edits, deletions and read marks of `window` once, for the feed's periodic
     * sweep: those whose publish was lost without an outage (the database's answer lost after
     * the commit, so none was published; a deletion or a mark done again changes nothing and
     * publishes nothing; or the instance ended between the two). Read marks come by the
     * thousand a second, so the store first tallies them per chat, and only the marks of a chat
     * whose tally differs from what was delivered here are read. Resolves with how many were
     * handed on; rejects when the store does not answer.
     */
    sweep(window: RecentWindow): Promise<number> {
      return replayOnce(window, "untallied");
    },

    /** Ends the retries still waiting. */
    close(): void {
      closed = true;
      for (const wake of pauses) wake();
      pauses.clear();
    },
  };
}

/** The chats' ids in batches of at most READS_PER_BATCH marks, a chat with more alone. */
function inBatches(chats: ReadonlyArray<{ chat_id: string; reads: number }>): string[][] {
  const batches: string[][] = [];
  let batch: string[] = [];
  let marks = 0;
  for (const { chat_id, reads } of chats) {
    if (batch.length > 0 && marks + reads > READS_PER_BATCH) {
      batches.push(batch);
      batch = [];
      marks = 0;
    }
    batch.push(chat_id);
    marks += reads;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

function sameTally(a: ReadTally, b: ReadTally): boolean {
  return a.reads === b.reads && a.offsetsMs === b.offsetsMs;
}

/** When an amended message was last amended: its edit or its deletion, whichever came later. */
function amendedAt(message: StoredMessage): string {
  const { edited_at, deleted_at } = message;
  if (deleted_at === null) return edited_at!;
  return edited_at !== null && edited_at > deleted_at ? edited_at : deleted_at;
}
