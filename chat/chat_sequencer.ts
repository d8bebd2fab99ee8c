import { createDelivery, type Delivery } from "./delivery.ts";
import type { ChatEnvelope } from "./events.ts";
import type { ChatStore } from "./ports.ts";
import { type StoredMessage, toClientMessage } from "./types.ts";

/** Events that name a message by its seq or id, and so must not reach a socket before it. */
const ABOUT_MESSAGES: ReadonlySet<string> = new Set([
  "message_read",
  "messages_read",
  "message_deleted",
  "message_edited",
]);

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
   * Events about messages (read, deleted, edited) that arrived while messages waited ahead of a
   * gap, each with the highest seq it may be about: it goes out after that message, never
   * before.
   */
  const behind: Array<{ afterSeq: number; delivery: Delivery }> = [];
  let gapTimer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  function release(delivery: Delivery) {
    const frame = delivery.envelope.frame;
    if (frame.type !== "chat_message") {
      if (ahead.size === 0 || !ABOUT_MESSAGES.has(frame.type)) return deliver(delivery);
      behind.push({ afterSeq: Math.max(...ahead.keys()), delivery });
      return;
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
    while (behind.length > 0 && behind[0]!.afterSeq <= lastSeq!) deliver(behind.shift()!.delivery);
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
     * An edit or deletion of message `seq` replayed from the store: out now if that message
     * went out, after it if it waits behind a gap as the bus carried it; dropped while it is
     * still to be read from the store, which gives it amended.
     */
    replayed(seq: number, delivery: Delivery): void {
      if (lastSeq === null) return;
      if (seq <= lastSeq) deliver(delivery);
      else if (ahead.has(seq)) behind.push({ afterSeq: seq, delivery });
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
