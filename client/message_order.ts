import type { Message } from "../protocol/mod.ts";
import { RequestError, RequestTimeoutError } from "./errors.ts";
import { createSequencer, type Sequencer } from "./sequencer.ts";
import type { LatestChatFrame } from "./types.ts";

export interface MessageOrderDeps {
  /** Reads a chat's messages after `afterSeq`, oldest first (`load_latest_chat`). */
  load(chatId: string, afterSeq: number): Promise<LatestChatFrame>;
  /** Gives one message to the application. */
  release(chatId: string, message: Message): void;
  /** How long to wait before reading again after failed read `attempt` (0 for the first). */
  retryDelay(attempt: number): number;
}

/**
 * The messages of every chat a client sees, released to the application once each and in
 * `seq` order. A gap (after a reconnect, or a message that arrives early) is filled from the
 * store, page by page, before what waits behind it is released. A read the server refused
 * for now (`rate_limited`, `unavailable`) or did not answer in time is made again after a
 * backoff; a lost connection ends the filling until the next connection's first frame.
 */
export function createMessageOrder(deps: MessageOrderDeps) {
  const sequencers = new Map<string, Sequencer>();
  const filling = new Set<string>();
  /** Backoff waits before a read is made again, each with its wake-up (stop() ends them). */
  const pauses = new Map<ReturnType<typeof setTimeout>, () => void>();
  let gapsFilled = 0;
  let stopped = false;

  function pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        pauses.delete(timer);
        resolve();
      }, ms);
      pauses.set(timer, resolve);
    });
  }

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

  /**
   * The page after `after`, or undefined when it is worth reading again: the server refused
   * for now or did not answer in time, or the page is not the one asked for (of another
   * chat, or not starting right after `after`: seq has no holes and deleted messages stay
   * as tombstones, so a true answer always does).
   */
  async function read(chatId: string, after: number): Promise<LatestChatFrame | undefined> {
    let page: LatestChatFrame;
    try {
      page = await deps.load(chatId, after);
    } catch (error) {
      if (worthRetrying(error)) return undefined;
      throw error;
    }
    const fits = page.chat_id === chatId &&
      page.messages.every((message, index) => message.seq === after + 1 + index);
    return fits ? page : undefined;
  }

  /** Reads the store after the last released message until nothing is missing. */
  function fill(chatId: string): void {
    if (filling.has(chatId) || stopped) return;
    filling.add(chatId);
    const load = async () => {
      let failures = 0;
      while (!stopped) {
        const sequencer = sequencerOf(chatId);
        const after = sequencer.last ?? 0;
        // a read made before messages were held may predate them in the store
        const heldAtRead = sequencer.hasGap;
        const page = await read(chatId, after);
        if (!page) {
          await pause(deps.retryDelay(failures++));
          continue;
        }
        failures = 0;
        deliver(chatId, page.messages);
        if (page.has_more) continue;
        if (sequencer.hasGap && (sequencer.last !== after || !heldAtRead)) continue;
        // asked after they were stored, the store has nothing before the messages still
        // held: only history removed could mean that; release them rather than wait forever
        for (const message of sequencer.skipGap()) deps.release(chatId, message);
        gapsFilled++;
        return;
      }
    };
    load()
      // a lost connection (the next one's first frame starts filling again), the client
      // closed, or a refusal that will not change (forbidden: no longer in the chat)
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
      for (const [timer, wake] of pauses) {
        clearTimeout(timer);
        wake();
      }
      pauses.clear();
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

/** A read that may succeed if made again on the same connection. */
function worthRetrying(error: unknown): boolean {
  return error instanceof RequestTimeoutError ||
    (error instanceof RequestError && error.retryable);
}
