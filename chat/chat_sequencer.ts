import { createDelivery, type Delivery } from "./delivery.ts";
import type { ChatEnvelope } from "./events.ts";
import type { ChatStore } from "./ports.ts";
import { type StoredMessage, toClientMessage } from "./types.ts";

/**
 * The seq of the message an event is about, which it must not reach a socket before; 0 for a
 * `messages_read` (about every message up to a seq the reader chose) and null for events not
 * about messages.
 */
function aboutSeq(frame: Delivery["envelope"]["frame"]): number | null {
  switch (frame.type) {
    case "message_read":
    case "message_deleted":
      return frame.seq;
    case "message_edited":
      return frame.message.seq;
    case "messages_read":
      return 0;
    default:
      return null;
  }
}

/** An event held until the message it is about went out; `stillOwed` is asked then. */
interface HeldEvent {
  afterSeq: number;
  delivery: Delivery;
  stillOwed?: () => boolean;
}

/**
 * One followed chat's events, handed to `deliver` with its messages strictly in seq order.
 * Nothing goes out before `startAfter` says where the chat stood in the store. A message that
 * arrives after a gap waits `gapWaitMs` for the ones before it, which are then read from the
 * store (persist, then publish: the store always has them); events about messages held behind
 * the gap wait for those messages.
 */
export function createChatSequencer(chatId: string, deps: {
  store: Pick<ChatStore, "messagesBetween">;
  /** Hands an event on to the chat's sockets. */
  deliver: (delivery: Delivery) => void;
  /** Told of each message read from the store just before it is delivered. */
  onStored: (message: StoredMessage) => void;
  gapWaitMs: number;
  onError: (error: unknown, context: string) => void;
}) {
  const { deliver, gapWaitMs, onError } = deps;
  /** seq of the last chat_message delivered; null until the baseline is read. */
  let lastSeq: number | null = null;
  /** Messages that arrived ahead of a gap, by seq. */
  const ahead = new Map<number, Delivery>();
  /** Events that arrived before the baseline was known. */
  const early: Delivery[] = [];
  /**
   * Events about messages (read, deleted, edited) that came before their message went out, or
   * while messages waited ahead of a gap, in arrival order: each goes out once the message it
   * is about, and every message that waited ahead when it came, went out.
   */
  const behind: HeldEvent[] = [];
  let gapTimer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  /** Out now when nothing it must follow is still to go out, else held behind. */
  function releaseAbout(held: HeldEvent) {
    const afterSeq = Math.max(held.afterSeq, ...ahead.keys());
    if (behind.length > 0 || afterSeq > lastSeq!) return void behind.push({ ...held, afterSeq });
    if (held.stillOwed?.() ?? true) deliver(held.delivery);
  }

  function release(delivery: Delivery) {
    const frame = delivery.envelope.frame;
    if (frame.type !== "chat_message") {
      const about = aboutSeq(frame);
      if (about === null) return deliver(delivery);
      return releaseAbout({ afterSeq: about, delivery });
    }
    const seq = frame.message.seq;
    if (seq <= lastSeq!) return; // already delivered (or in the store before we joined)
    if (seq > lastSeq! + 1) {
      ahead.set(seq, delivery);
      gapTimer ??= setTimeout(fillGap, gapWaitMs);
      return;
    }
    lastSeq = seq;
    deliver(delivery);
    releaseAhead();
  }

  /** Delivers what waited ahead of the gap and behind those messages, now that it may go. */
  function releaseAhead() {
    // what the store delivered while it also waited here
    for (const seq of ahead.keys()) {
      if (seq <= lastSeq!) ahead.delete(seq);
    }
    let next = ahead.get(lastSeq! + 1);
    while (next) {
      ahead.delete(lastSeq! + 1);
      lastSeq! += 1;
      deliver(next);
      next = ahead.get(lastSeq! + 1);
    }
    while (behind.length > 0 && behind[0]!.afterSeq <= lastSeq!) {
      const held = behind.shift()!;
      if (held.stillOwed?.() ?? true) deliver(held.delivery);
    }
    if (ahead.size === 0 && gapTimer !== undefined) {
      clearTimeout(gapTimer);
      gapTimer = undefined;
    }
  }

  async function fillGap() {
    gapTimer = undefined;
    if (stopped || ahead.size === 0) return;
    const firstAhead = Math.min(...ahead.keys());
    const sample = ahead.get(firstAhead)!.envelope;
    try {
      const missing = await deps.store.messagesBetween(chatId, lastSeq! + 1, firstAhead - 1);
      if (stopped) return;
      deliverStored(missing, sample.chat);
    } catch (error) {
      onError(error, "gap fill");
    }
    releaseAhead();
    if (ahead.size > 0 && !stopped) gapTimer ??= setTimeout(fillGap, gapWaitMs);
  }

  /**
   * Messages read from the store, delivered in seq order from the one after the last delivered;
   * returns those delivered. The bus may have delivered some of them while they were being
   * read: those are skipped; a seq missing from `messages` stops the delivery there, and the
   * gap stays to be filled. What waits ahead of them goes out at `releaseAhead()`, so that a
   * caller can first send what these messages are owed.
   */
  function deliverStored(
    messages: readonly StoredMessage[],
    chat: ChatEnvelope["chat"],
  ): StoredMessage[] {
    const delivered: StoredMessage[] = [];
    for (const message of messages) {
      if (message.seq <= lastSeq!) continue;
      if (message.seq !== lastSeq! + 1) break;
      lastSeq = message.seq;
      deps.onStored(message);
      deliver(createDelivery({
        chat,
        audience: { to: "all" },
        frame: { type: "chat_message", chat_id: chatId, message: toClientMessage(message) },
        sent_at: Date.parse(message.created_at),
      }));
      delivered.push(message);
    }
    return delivered;
  }

  return {
    /** seq of the last message delivered; null until `startAfter`. */
    get lastSeq(): number | null {
      return lastSeq;
    },

    /**
     * The chat's last stored seq, read once its bus subscription was in force: the messages up
     * to it are history, not delivered; the events that came before it go out now, in order.
     */
    startAfter(storedSeq: number): void {
      lastSeq = storedSeq;
      for (const delivery of early.splice(0)) release(delivery);
    },

    /** An event as the bus brought it: out now, or once what it must follow is out. */
    receive(delivery: Delivery): void {
      if (lastSeq === null) early.push(delivery);
      else release(delivery);
    },

    /**
     * An edit or deletion of message `seq` replayed from the store, in line with the live events
     * about messages; `stillOwed` is asked when it may go out (the message may have come from
     * the store amended meanwhile, or a newer amendment gone out).
     */
    replayed(seq: number, delivery: Delivery, stillOwed: () => boolean): void {
      if (lastSeq === null) return;
      releaseAbout({ afterSeq: seq, delivery, stillOwed });
    },

    deliverStored,
    releaseAhead,

    /** The chat is no longer followed: no gap is filled from now on. */
    stop(): void {
      stopped = true;
      if (gapTimer !== undefined) clearTimeout(gapTimer);
    },
  };
}

export type ChatSequencer = ReturnType<typeof createChatSequencer>;
