import type { Message } from "../protocol/mod.ts";
import { createSequencer, type Sequencer } from "./sequencer.ts";
import type { LatestChatFrame } from "./types.ts";

export interface MessageOrderDeps {
  /** Reads a chat's messages after `afterSeq`, oldest first (`load_latest_chat`). */
  load(chatId: string, afterSeq: number): Promise<LatestChatFrame>;
  /** Gives one message to the application. */
  release(chatId: string, message: Message): void;
}

/**
 * The messages of every chat a client sees, released to the application once each and in
 * `seq` order. A gap (after a reconnect, or a message that arrives early) is filled from the
 * store, page by page, before what waits behind it is released.
 */
export function createMessageOrder(deps: MessageOrderDeps) {
  const sequencers = new Map<string, Sequencer>();
  const filling = new Set<string>();
  let gapsFilled = 0;
  let stopped = false;

  function sequencerOf(chatId: string): Sequencer {
    let sequencer = sequencers.get(chatId);
    if (!sequencer) sequencers.set(chatId, sequencer = createSequencer());
    return sequencer;
  }

  function deliver(chatId: string, messages: Message[]): Sequencer {
    const sequencer = sequencerOf(chatId);
    for (const message of messages) {
      // on /v1/ws/chats/, a chat first heard of now starts here
      if (sequencer.last === null) sequencer.startAfter(message.seq - 1);
      for (const released of sequencer.accept(message)) deps.release(chatId, released);
    }
    return sequencer;
  }

  /** Reads the store after the last released message until nothing is missing. */
  function fill(chatId: string): void {
    if (filling.has(chatId) || stopped) return;
    filling.add(chatId);
    const load = async () => {
      while (!stopped) {
        const after = sequencerOf(chatId).last ?? 0;
        const page = await deps.load(chatId, after);
        const sequencer = deliver(chatId, page.messages);
        if (page.has_more || (sequencer.hasGap && sequencer.last !== after)) continue;
        // seq has no holes, so messages still waiting with nothing stored before them can
        // only mean history was removed: release them rather than wait forever
        for (const message of sequencer.skipGap()) deps.release(chatId, message);
        gapsFilled++;
        return;
      }
    };
    load()
      // a lost connection: the next one's first frame starts filling again
      .catch(() => {})
      .finally(() => filling.delete(chatId));
  }

  return {
    /** True once a page or a message said where the chat's messages start. */
    knows(chatId: string): boolean {
      return sequencerOf(chatId).last !== null;
    },
    /** Messages up to `seq` are history the application has: release what comes after. */
    startAfter(chatId: string, seq: number): void {
      sequencerOf(chatId).startAfter(seq);
    },
    /** Takes messages (live, or a page after a reconnect); fills a gap they show. */
    take(chatId: string, messages: Message[]): void {
      if (deliver(chatId, messages).hasGap) fill(chatId);
    },
    /**
     * The chat's newest `seq` as a `chats` row says: a chat not seen before starts there;
     * with `fillNewer`, one seen before reads what it missed.
     */
    newest(chatId: string, seq: number, fillNewer: boolean): void {
      const sequencer = sequencerOf(chatId);
      if (sequencer.last === null) sequencer.startAfter(seq);
      else if (fillNewer && seq > sequencer.last) fill(chatId);
    },
    /** No more filling (the client closed). */
    stop(): void {
      stopped = true;
    },
    get duplicates(): number {
      let count = 0;
      for (const sequencer of sequencers.values()) count += sequencer.duplicates;
      return count;
    },
    get gapsFilled(): number {
      return gapsFilled;
    },
  };
}
