import type { ReceivedMessage } from "./received_frames.ts";
import { laterCopy } from "./amendments.ts";

/**
 * One chat's messages released in `seq` order, each once: a message already released is
 * dropped, one that arrives after a gap waits until the gap is filled (the chat's `seq` has
 * no gaps, so a gap always means messages not yet seen). Of two copies of a waiting message
 * (live, then from the store) the later one waits: a deletion or edit made meanwhile shows.
 */
export interface Sequencer {
  /** The highest `seq` released, or null before the first page or message says where to start. */
  readonly last: number | null;
  /** True while messages wait behind a gap: the ones from `last + 1` need fetching. */
  readonly hasGap: boolean;
  /** Messages dropped as already released. */
  readonly duplicates: number;
  /** Messages up to `seq` are history the application already has; only ever moves forward. */
  startAfter(seq: number): void;
  /**
   * Takes messages (one, or a page); returns every message that can now be released, in
   * order. A page is taken whole before anything is released, so its copies count.
   */
  accept(...messages: ReceivedMessage[]): ReceivedMessage[];
  /**
   * Gives up on what is missing up to `upTo` (default: behind everything that waits; the store
   * had nothing to fill it): releases what waits up to it, in order, and what follows on from
   * that without a gap.
   */
  skipGap(upTo?: number): ReceivedMessage[];
}

export function createSequencer(): Sequencer {
  let last: number | null = null;
  let duplicates = 0;
  const waiting = new Map<number, ReceivedMessage>();

  function release(): ReceivedMessage[] {
    const out: ReceivedMessage[] = [];
    if (last === null) return out;
    for (let next = waiting.get(last + 1); next; next = waiting.get(last + 1)) {
      waiting.delete(next.seq);
      out.push(next);
      last = next.seq;
    }
    return out;
  }

  return {
    get last() {
      return last;
    },
    get hasGap() {
      return waiting.size > 0;
    },
    get duplicates() {
      return duplicates;
    },
    startAfter(seq) {
      if (last !== null && seq <= last) return;
      last = seq;
      for (const waitingSeq of waiting.keys()) {
        if (waitingSeq <= seq) waiting.delete(waitingSeq);
      }
    },
    accept(...messages) {
      for (const message of messages) {
        if (last !== null && message.seq <= last) {
          duplicates++;
          continue;
        }
        const held = waiting.get(message.seq);
        if (held) duplicates++;
        waiting.set(message.seq, held ? laterCopy(held, message) : message);
      }
      return release();
    },
    skipGap(upTo = Infinity) {
      const out = [...waiting.values()]
        .filter((message) => message.seq <= upTo)
        .sort((a, b) => a.seq - b.seq);
      for (const message of out) waiting.delete(message.seq);
      const top = out.at(-1);
      if (top) last = top.seq;
      return [...out, ...release()];
    },
  };
}
