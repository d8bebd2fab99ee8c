import type { ReceivedMessage } from "./received_frames.ts";
import { amendedSeq, type Amendment, applyAmendments, type ReadUpTo } from "./amendments.ts";
import { ConnectionLostError, RequestError, RequestTimeoutError } from "./errors.ts";
import { createSequencer, type Sequencer } from "./sequencer.ts";
import type { LatestChatFrame, MessageGap } from "./types.ts";

export interface MessageOrderDeps {
  /** Reads a chat's messages after `afterSeq`, oldest first (`load_latest_chat`). */
  load(chatId: string, afterSeq: number): Promise<LatestChatFrame>;
  /** Gives one message to the application. */
  release(chatId: string, message: ReceivedMessage): void;
  /** Gives a deletion, an edit or a read mark to the application. */
  amended(change: Amendment | ReadUpTo): void;
  /** Tells the application of messages it will not get, just before those after them. */
  skipped(gap: MessageGap): void;
  /** How long to wait before reading again after failed read `attempt` (0 for the first). */
  retryDelay(attempt: number): number;
}

/** The most reads of the store a client's gap fills have under way at once. */
export const MAX_READS = 4;

/**
 * How many of a chat's released messages are remembered as the application has them: the
 * largest page (`load_latest_chat`'s limit), which is as far back as a reconnect's first page
 * reaches.
 */
const SHOWN_REMEMBERED = 100;

/** A released message as the application has it: deleted, and when it was last edited (ms). */
interface Shown {
  deleted: boolean;
  editedAt: number;
}

/**
 * The messages of every chat a client sees, released to the application once each and in
 * `seq` order. A gap (after a reconnect, or a message that arrives early) is filled from the
 * store, page by page, before what waits behind it is released. A read the server refused
 * for now (`rate_limited`, `unavailable`) is made again after a backoff, and so is one not
 * answered in time on a socket kept (still sending a large upload); the fills of all chats
 * have at most MAX_READS reads under way, or waiting out such a backoff, at once (turnNow). A
 * lost connection, also a socket left as silent because the read got no reply, ends the
 * filling until the next connection's first frame. A
 * read refused for good (a code that is not retryable, or unknown) gives up on the gap: what
 * waits behind it is released in order, each range missing announced as a `gap` just before
 * the message after it, rather than held until some later message happens to come. With
 * nothing held after it (a `chats` row showed newer messages, or an amendment named a message
 * not seen), the range up to that newest message known stored is announced on its own, and
 * the amendments waiting for it are passed on; messages after it missed too are not known
 * then, and show as a gap when a later message comes. A page that passes over messages (it
 * starts later than asked, or skips a seq) shows them no longer stored: each range is announced
 * so, just before the message after it, and the filling reads on after the page.
 * A deletion, edit or read mark of a message not yet released waits for it: the message is
 * released with it applied, and the event follows. A `messages_read` that reaches past the
 * released messages while some are held or being read waits until they are released (or the
 * filling ends); a page read before it came is read again, so that its copies are the store's
 * after the mark.
 */
export function createMessageOrder(deps: MessageOrderDeps) {
  const sequencers = new Map<string, Sequencer>();
  const filling = new Set<string>();
  /** Per chat, the amendments of messages not yet released, by seq, in the order they came. */
  const amendments = new Map<string, Map<number, Amendment[]>>();
  /** Per chat, the `messages_read` waiting for messages not yet released, in the order they came. */
  const readsUpTo = new Map<string, ReadUpTo[]>();
  /** Per chat, how many `messages_read` have waited so far: a read made before one is stale. */
  const readsHeld = new Map<string, number>();
  /**
   * Per chat, the newest seq known to be stored that a fill reads towards though no message
   * after it is held: a `chats` row's newest message, or the message an amendment names.
   */
  const ends = new Map<string, number>();
  /**
   * Per chat, the newest released messages as the application has them, by seq: a copy in a
   * reconnect's page newer than that was edited or deleted while the client was away, and no
   * event of it will come (see amendedMeanwhile).
   */
  const shown = new Map<string, Map<number, Shown>>();
  /**
   * Chats a read of the client's was refused `forbidden` in: no longer the user's (a vendor
   * membership revoked, which the server does not push), until a `chats` row lists them again.
   */
  const left = new Set<string>();
  /** Backoff waits before a read is made again, each with its wake-up (stop() ends them). */
  const pauses = new Map<ReturnType<typeof setTimeout>, () => void>();
  let gapsFilled = 0;
  let gapsSkipped = 0;
  let stopped = false;
  /** Turns to read taken (see turnNow), and the fills waiting for one, oldest first. */
  let reading = 0;
  const waitingTurns: Array<() => void> = [];

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

  /**
   * Notes message `seq` as the application now has it (the oldest remembered go first): a
   * deletion is final, and an edit never older than one it had.
   */
  function show(chatId: string, seq: number, copy: Shown): void {
    let copies = shown.get(chatId);
    if (!copies) shown.set(chatId, copies = new Map());
    const known = copies.get(seq);
    copies.delete(seq);
    copies.set(seq, {
      deleted: copy.deleted || known?.deleted === true,
      editedAt: Math.max(copy.editedAt, known?.editedAt ?? -Infinity),
    });
    if (copies.size > SHOWN_REMEMBERED) copies.delete(copies.keys().next().value!);
  }

  const editedAt = (message: ReceivedMessage) =>
    message.edited_at === null ? -Infinity : Date.parse(message.edited_at);

  /** Gives a change to the application, noting the edit or deletion it makes. */
  function passOn(change: Amendment | ReadUpTo): void {
    if (change.type === "message_edited") {
      const { message } = change;
      show(change.chat_id, message.seq, { deleted: message.deleted, editedAt: editedAt(message) });
    } else if (change.type === "message_deleted") {
      show(change.chat_id, change.seq, { deleted: true, editedAt: -Infinity });
    }
    deps.amended(change);
  }

  /**
   * A copy of a released message (a reconnect's first page, a `chats` row's last message)
   * edited or deleted since the application got it: the change was made while the client was
   * away, and its event went to no socket of the client's. It is passed on as a
   * `message_edited` with the copy (a deletion too: who deleted it, the copy does not say), so
   * that the old text, or the content taken back, is not shown on.
   */
  function amendedMeanwhile(chatId: string, copy: ReceivedMessage): void {
    const known = shown.get(chatId)?.get(copy.seq);
    if (!known || known.deleted) return;
    if (!copy.deleted && !(editedAt(copy) > known.editedAt)) return;
    passOn({ type: "message_edited", chat_id: chatId, message: copy });
  }

  function deliver(chatId: string, messages: ReceivedMessage[]): Sequencer {
    const sequencer = sequencerOf(chatId);
    const first = messages[0];
    // on /v1/ws/chats/, a chat first heard of now starts here
    if (sequencer.last === null && first) sequencer.startAfter(first.seq - 1);
    const last = sequencer.last ?? 0;
    for (const copy of messages) if (copy.seq <= last) amendedMeanwhile(chatId, copy);
    for (const released of sequencer.accept(...messages)) release(chatId, released);
    return sequencer;
  }

  /**
   * Releases a message with what was amended while it waited, and then those amendments, and
   * the `messages_read` that reach no further than it.
   */
  function release(chatId: string, message: ReceivedMessage): void {
    const held = amendments.get(chatId);
    const waiting = held?.get(message.seq);
    const released = waiting ? applyAmendments(message, waiting) : { message, after: [] };
    held?.delete(message.seq);
    show(chatId, message.seq, {
      deleted: released.message.deleted,
      editedAt: editedAt(released.message),
    });
    deps.release(chatId, released.message);
    for (const amendment of released.after) passOn(amendment);
    passReadsUpTo(chatId, message.seq);
  }

  /** Passes on the waiting `messages_read` of a chat up to `seq`, in the order they came. */
  function passReadsUpTo(chatId: string, seq: number): void {
    const waiting = readsUpTo.get(chatId);
    if (!waiting) return;
    const due = waiting.filter((mark) => mark.up_to_seq <= seq);
    if (due.length === 0) return;
    const rest = waiting.filter((mark) => mark.up_to_seq > seq);
    if (rest.length > 0) readsUpTo.set(chatId, rest);
    else readsUpTo.delete(chatId);
    for (const mark of due) passOn(mark);
  }

  /**
   * A `messages_read` waits while it reaches past the released messages and some are held or
   * being read; otherwise (nothing is missing: it may name a seq past the chat's newest) it is
   * passed on at once.
   */
  function readUpTo(mark: ReadUpTo): void {
    const chatId = mark.chat_id;
    const sequencer = sequencerOf(chatId);
    const last = sequencer.last;
    const missing = sequencer.hasGap || filling.has(chatId);
    if (last === null || mark.up_to_seq <= last || !missing) return passOn(mark);
    readsUpTo.set(chatId, [...(readsUpTo.get(chatId) ?? []), mark]);
    readsHeld.set(chatId, (readsHeld.get(chatId) ?? 0) + 1);
  }

  /**
   * The page after `after`, or undefined when it is worth reading again: the server refused
   * for now or did not answer in time, or the page is not the one asked for (of another chat,
   * or not of messages after `after`, oldest first). A page may start later than asked, or skip
   * a seq: those messages are no longer stored (see fill).
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
      page.messages.every((message, index) =>
        message.seq > (page.messages[index - 1]?.seq ?? after)
      );
    return fits ? page : undefined;
  }

  /** Announces messages of a chat the application will not get (see MessageGap). */
  function skipped(gap: MessageGap): void {
    gapsSkipped++;
    deps.skipped(gap);
  }

  /** A read of the chat was refused for good (`error`): `forbidden` says the user left it. */
  function refused(chatId: string, error: unknown): void {
    if (error instanceof RequestError && error.code === "forbidden") left.add(chatId);
  }

  /** A fill of the chat reads at least up to `seq`, a message known to be stored. */
  function reach(chatId: string, seq: number): void {
    ends.set(chatId, Math.max(ends.get(chatId) ?? 0, seq));
  }

  /**
   * Gives up on what is missing before the held messages (`error`: why), or before held
   * message `upTo` only: releases them in order, each range never had announced just before
   * the message after it. Giving up on all, a range after them up to the newest message known
   * to be stored is announced last, and the messages up to it taken as given. Returns how many
   * ranges it announced.
   */
  function skipGap(chatId: string, error: unknown, upTo = Infinity): number {
    const sequencer = sequencerOf(chatId);
    const skippedBefore = gapsSkipped;
    let before = sequencer.last ?? 0;
    for (const message of sequencer.skipGap(upTo)) {
      if (message.seq > before + 1) {
        skipped({ chat_id: chatId, from_seq: before + 1, to_seq: message.seq - 1, error });
      }
      before = message.seq;
      release(chatId, message);
    }
    // with nothing after it to show it, a range whose end is known is announced on its own:
    // the application learns of it now, and the amendments that waited for it are passed on
    const end = upTo === Infinity ? ends.get(chatId) ?? 0 : 0;
    if (upTo === Infinity) ends.delete(chatId);
    if (end > (sequencer.last ?? 0)) {
      skipped({ chat_id: chatId, from_seq: (sequencer.last ?? 0) + 1, to_seq: end, error });
      sequencer.startAfter(end);
    }
    // amendments of messages skipped over are passed on as they are
    for (const [seq, waiting] of amendments.get(chatId) ?? []) {
      if (seq > (sequencer.last ?? 0)) continue;
      amendments.get(chatId)?.delete(seq);
      for (const amendment of waiting) passOn(amendment);
    }
    return gapsSkipped - skippedBefore;
  }

  /**
   * One of MAX_READS turns to read, when one is free (or the order stopped): the function that
   * ends it; otherwise undefined, and nextTurn() waits for one. A reconnect that finds many
   * chats with news would otherwise write a read for each at once: past the server's burst they
   * are refused, and each refused again as it is retried while the others are written, past the
   * server's limit of refusals in a row (WS_FLOOD_LIMIT), which closes the socket (4429). A fill
   * keeps its turn through the wait before reading again, so that no read is written while the
   * server is refusing.
   */
  function turnNow(): (() => void) | undefined {
    if (!stopped && reading >= MAX_READS) return undefined;
    reading++;
    return endTurn;
  }

  /** Waits for a turn to read (see turnNow). */
  function nextTurn(): Promise<() => void> {
    return new Promise((resolve) => waitingTurns.push(() => resolve(endTurn)));
  }

  /** An ended turn goes to the fill waiting longest, if any. */
  function endTurn(): void {
    const next = waitingTurns.shift();
    if (next) next();
    else reading--;
  }

  /** Reads the store after the last released message until nothing is missing. */
  function fill(chatId: string): void {
    if (filling.has(chatId) || stopped) return;
    filling.add(chatId);
    const load = async () => {
      // ranges this fill announced (other chats' fills announce theirs meanwhile)
      let skippedHere = 0;
      let failures = 0;
      while (!stopped) {
        // a free turn is taken at once: the read is then made along with the frame that called
        // for it, before any frame after it is taken
        const done = turnNow() ?? await nextTurn();
        const sequencer = sequencerOf(chatId);
        const after = sequencer.last ?? 0;
        // a read made before messages were held, or were known stored, may predate them
        const heldAtRead = sequencer.hasGap;
        const endAtRead = ends.get(chatId) ?? 0;
        const readsAtRead = readsHeld.get(chatId);
        let page: LatestChatFrame | undefined;
        try {
          if (stopped) return;
          page = await read(chatId, after);
          // worth reading again: the turn is kept through the wait, so that the other chats'
          // reads wait too (see turnNow)
          if (!page && !stopped) await pause(deps.retryDelay(failures++));
        } catch (error) {
          // a lost connection: the next connection's first frame starts filling again
          if (stopped || error instanceof ConnectionLostError) throw error;
          // refused for good: asking again will not help, and holding what came would keep
          // it from the application until some later message happens to come
          refused(chatId, error);
          skipGap(chatId, error);
          return;
        } finally {
          done();
        }
        // the client closed while the page was on its way
        if (stopped) return;
        if (!page) continue;
        failures = 0;
        // a messages_read came meanwhile: the page may have been read before the mark
        if (readsHeld.get(chatId) !== readsAtRead) continue;
        deliver(chatId, page.messages);
        // what the page passes over is no longer stored (history removed: seq has no holes and
        // deleted messages stay as tombstones); read again, it would be passed over again
        const newest = page.messages.at(-1)?.seq ?? 0;
        if (newest > (sequencer.last ?? 0)) skippedHere += skipGap(chatId, undefined, newest);
        if (page.has_more) continue;
        const end = ends.get(chatId) ?? 0;
        const missing = sequencer.hasGap || end > (sequencer.last ?? 0);
        const stale = sequencer.last !== after || (sequencer.hasGap && !heldAtRead) ||
          end > endAtRead;
        if (missing && stale) continue;
        // asked after they were stored, the store has nothing before the messages still
        // held, or up to the one known stored: only history removed could mean that; release
        // them rather than wait forever
        skippedHere += skipGap(chatId, undefined);
        // a gap given up on, in part or whole, is not one filled
        if (skippedHere === 0) gapsFilled++;
        return;
      }
    };
    load()
      // a lost connection (the next one's first frame starts filling again), or the client
      // closed
      .catch(() => {})
      .finally(() => {
        filling.delete(chatId);
        // nothing more is being read: what the read marks waited for has come, or will come
        // from the store after them (the next connection's filling)
        if (!stopped && !sequencerOf(chatId).hasGap) passReadsUpTo(chatId, Infinity);
      });
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
    /**
     * Takes messages (live, or a page after a reconnect); fills a gap they show. With none, the
     * read marks that waited through a lost connection have what they waited for.
     */
    take(chatId: string, messages: ReceivedMessage[]): void {
      if (deliver(chatId, messages).hasGap) fill(chatId);
      else if (!filling.has(chatId)) passReadsUpTo(chatId, Infinity);
    },
    /**
     * Takes a deletion, edit or read mark: passed on at once when its message was released (or
     * the chat is new here); otherwise it waits for the message, which is fetched if it was
     * missed. A `messages_read`: see readUpTo.
     */
    amend(amendment: Amendment | ReadUpTo): void {
      if (amendment.type === "messages_read") return readUpTo(amendment);
      const chatId = amendment.chat_id;
      const seq = amendedSeq(amendment);
      const last = sequencerOf(chatId).last;
      if (last === null || seq <= last) return passOn(amendment);
      let held = amendments.get(chatId);
      if (!held) amendments.set(chatId, held = new Map());
      held.set(seq, [...(held.get(seq) ?? []), amendment]);
      reach(chatId, seq);
      fill(chatId);
    },
    /**
     * A chat's message as a `chats` row shows it: an edit or a deletion of a released one made
     * while the client was away is passed on (see amendedMeanwhile).
     */
    rowShows(chatId: string, message: ReceivedMessage): void {
      const last = sequencerOf(chatId).last;
      if (last !== null && message.seq <= last) amendedMeanwhile(chatId, message);
    },
    /**
     * The chat's newest `seq` as a `chats` row says: a chat not seen before starts there;
     * with `fillNewer`, one seen before reads what it missed.
     */
    newest(chatId: string, seq: number, fillNewer: boolean): void {
      left.delete(chatId);
      const sequencer = sequencerOf(chatId);
      if (sequencer.last === null) sequencer.startAfter(seq);
      else if (fillNewer && seq > sequencer.last) {
        reach(chatId, seq);
        fill(chatId);
      }
    },
    /**
     * Waits the backoff before a read is made again after failed read `attempt` (0 for the
     * first); false when the client closed (at once, then).
     */
    async retryAfter(attempt: number): Promise<boolean> {
      if (!stopped) await pause(deps.retryDelay(attempt));
      return !stopped;
    },
    /**
     * A chat of the user's whose messages are known up to a `seq` (the first learned), with it:
     * what the heartbeat reads after. Undefined while none is.
     */
    someChat(): { chatId: string; seq: number } | undefined {
      for (const [chatId, sequencer] of sequencers) {
        if (sequencer.last !== null && !left.has(chatId)) return { chatId, seq: sequencer.last };
      }
      return undefined;
    },
    /** A read of the chat was refused for good (`error`): `forbidden` says the user left it. */
    refused,
    /** No more filling (the client closed). */
    stop(): void {
      stopped = true;
      for (const [timer, wake] of pauses) {
        clearTimeout(timer);
        wake();
      }
      pauses.clear();
      // the fills waiting for a turn end (they find the order stopped)
      for (const wake of waitingTurns.splice(0)) wake();
    },
    get duplicates(): number {
      let count = 0;
      for (const sequencer of sequencers.values()) count += sequencer.duplicates;
      return count;
    },
    get gapsFilled(): number {
      return gapsFilled;
    },
    get gapsSkipped(): number {
      return gapsSkipped;
    },
  };
}

export type MessageOrder = ReturnType<typeof createMessageOrder>;

/** A read that may succeed if made again on the same connection. */
export function worthRetrying(error: unknown): boolean {
  return error instanceof RequestTimeoutError ||
    (error instanceof RequestError && error.retryable);
}
