import type { DeliveredEnvelope, Delivery } from "./delivery.ts";
import type { ChatStore } from "./ports.ts";
import { type Message, type Side, toClientMessage, UNREAD_PREVIEW_LIMIT } from "./types.ts";

/**
 * Chat sides whose last unread push is remembered; least recently pushed go first, those with
 * a store read under way last.
 */
const MAX_UNREAD_WINDOWS = 2_000;

/**
 * How long an edit, deletion or read mark is applied to the pushes that follow: their snapshots
 * may have been taken before it committed (a store read begun earlier, a publisher slower to
 * publish than the amending instance) and would bring back the old text, or the message.
 */
const AMENDMENT_MEMORY_MS = 10_000;

/** A message's change a snapshot may predate: its edited client JSON; null: deleted or read. */
interface Amendment {
  json: string | null;
  /** Date.now() after which snapshots are taken to have it. */
  until: number;
}

/** The messages of a chat side's last unread push, kept to make the next one from. */
interface UnreadWindow {
  seqs: readonly number[];
  /** Client JSON of each, in the same order. */
  messages: readonly string[];
  /** Pushes begun: one read from the store is dropped when a later one went out first. */
  pushes: number;
  /**
   * Store reads under way: the window is kept until they answer, else a later push would
   * begin a new one, which they could not see, and go out behind it.
   */
  reading: number;
  /** The chat's recent amendments by seq, applied to each push; undefined: none. */
  amended?: Map<number, Amendment> | undefined;
  /** The side's recent read mark up to a seq (`messages_read`), applied likewise. */
  readUpTo?: { seq: number; until: number } | undefined;
}

/**
 * The contract's `unread_messages` push that follows each new message, to the receiver's side,
 * made on every instance that follows the chat: the bus carries only the seqs of its messages
 * (see `unreadSummarySchema`). The messages come from the publisher when this instance
 * published it, else from the chat side's previous push and the new message itself; failing
 * that (this instance joined late, or a deletion brought an older one in), from the store.
 */
export function createUnreadPushes(deps: {
  store: ChatStore;
  onError: (error: unknown, context: string) => void;
}) {
  const { store, onError } = deps;
  const windows = new Map<string, UnreadWindow>();

  function windowOf(key: string): UnreadWindow {
    const window = windows.get(key) ?? { seqs: [], messages: [], pushes: 0, reading: 0 };
    touch(key, window);
    if (windows.size > MAX_UNREAD_WINDOWS) evictOldest();
    return window;
  }

  function touch(key: string, window: UnreadWindow): void {
    windows.delete(key);
    windows.set(key, window);
  }

  /** The least recently pushed window without a read under way; those with one go last. */
  function evictOldest(): void {
    let skipped = 0;
    for (const [key, window] of windows) {
      if (window.reading === 0) return void windows.delete(key);
      // each is moved last once: every window reading, none goes
      if (++skipped === windows.size) return;
      touch(key, window);
    }
  }

  function readAndPush(
    chatId: string,
    side: Side,
    envelope: PushedAfter,
    to: { send: (push: Delivery) => void; stillFollowed: () => boolean },
    window: UnreadWindow,
    push: number,
  ) {
    window.reading++;
    store.unread(chatId, side, UNREAD_PREVIEW_LIMIT).then((snapshot) => {
      window.reading--;
      if (!to.stillFollowed() || window.pushes !== push) return; // a later one went out
      const { seqs, messages, count } = withAmendments(
        window,
        snapshot.messages.map((stored) => stored.seq),
        snapshot.messages.map((stored) => JSON.stringify(toClientMessage(stored))),
        snapshot.count,
      );
      window.seqs = seqs;
      window.messages = messages;
      to.send(unreadDelivery(envelope, { chatId, side, count, messages }));
    }, (error) => {
      window.reading--;
      onError(error, "unread push");
    });
  }

  return {
    /**
     * The push owed after `message` (a `chat_message` delivery with `unread`), handed to
     * `to.send`: at once, or once read from the store if by then `to.stillFollowed()` and no
     * later push of that side went out first.
     */
    after(
      chatId: string,
      message: Delivery,
      to: { send: (push: Delivery) => void; stillFollowed: () => boolean },
    ): void {
      const { envelope } = message;
      const { unread, frame } = envelope;
      if (!unread || frame.type !== "chat_message") return;
      const window = windowOf(`${chatId}:${unread.side}`);
      const push = ++window.pushes;
      const after = { chat: envelope.chat, sent_at: envelope.sent_at, seq: frame.message.seq };
      const pushWith = (...snapshot: [readonly number[], readonly string[], number]) => {
        const { seqs, messages, count } = withAmendments(window, ...snapshot);
        window.seqs = seqs;
        window.messages = messages;
        to.send(unreadDelivery(after, { chatId, side: unread.side, count, messages }));
      };
      const known = message.unreadMessages ?? fromPrevious(window, unread.seqs, frame.message);
      if (known.every((json) => json !== undefined)) {
        return pushWith(unread.seqs, known as string[], unread.count);
      }
      readAndPush(chatId, unread.side, after, to, window, push);
    },

    /**
     * The push owed to `side` after messages delivered from the store, which no publisher
     * summed up: read from the store, as `after` does when it cannot make one.
     */
    afterStored(
      chatId: string,
      side: Side,
      newest: PushedAfter,
      to: { send: (push: Delivery) => void; stillFollowed: () => boolean },
    ): void {
      const window = windowOf(`${chatId}:${side}`);
      readAndPush(chatId, side, newest, to, window, ++window.pushes);
    },

    /** A message was edited: the next pushes show its new text, whatever their snapshot. */
    edited(chatId: string, message: Message): void {
      const json = JSON.stringify(message);
      for (const side of ["customer", "vendor"] as const) {
        const window = windowOf(`${chatId}:${side}`);
        // a deleted message stays out, should its edit come late
        if (window.amended?.get(message.seq)?.json !== null) amend(window, message.seq, json);
        const index = window.seqs.indexOf(message.seq);
        if (index >= 0) window.messages = window.messages.with(index, json);
      }
    },

    /** Message `seq` was deleted or read: the next pushes leave it out, whatever their snapshot. */
    gone(chatId: string, seq: number): void {
      for (const side of ["customer", "vendor"] as const) {
        amend(windowOf(`${chatId}:${side}`), seq, null);
      }
    },

    /** `side` read every message up to `seq`: the next pushes leave them out likewise. */
    readUpTo(chatId: string, side: Side, seq: number): void {
      const window = windowOf(`${chatId}:${side}`);
      const until = Date.now() + AMENDMENT_MEMORY_MS;
      window.readUpTo = { seq: Math.max(seq, window.readUpTo?.seq ?? 0), until };
    },

    /** This instance no longer follows the chat. */
    forget(chatId: string): void {
      windows.delete(`${chatId}:customer`);
      windows.delete(`${chatId}:vendor`);
    },
  };
}

/** Remembers the newest amendment of message `seq` (the oldest remembered go first). */
function amend(window: UnreadWindow, seq: number, json: string | null): void {
  const amended = window.amended ??= new Map();
  amended.delete(seq);
  amended.set(seq, { json, until: Date.now() + AMENDMENT_MEMORY_MS });
  if (amended.size > UNREAD_PREVIEW_LIMIT) amended.delete(amended.keys().next().value!);
}

/**
 * A snapshot (oldest first) with the chat side's recent amendments applied: edited text
 * replaced; deleted and read messages (one by one or up to a seq) left out of the messages and
 * of the count (each was unread in the snapshot, as it names it), and a read up to a listed
 * seq takes the older unread it does not list out of the count too. Without amendments, the
 * snapshot as it is.
 */
function withAmendments(
  window: UnreadWindow,
  seqs: readonly number[],
  messages: readonly string[],
  count: number,
) {
  if (window.amended === undefined && window.readUpTo === undefined) {
    return { seqs, messages, count };
  }
  const now = Date.now();
  for (const [seq, amendment] of window.amended ?? []) {
    if (amendment.until <= now) window.amended!.delete(seq);
  }
  if (window.amended?.size === 0) window.amended = undefined;
  if (window.readUpTo && window.readUpTo.until <= now) window.readUpTo = undefined;
  const { amended, readUpTo } = window;
  if (amended === undefined && readUpTo === undefined) return { seqs, messages, count };
  const upTo = readUpTo?.seq ?? 0;
  // the unlisted unread are older than every listed one: read too, once a listed one is
  const unlistedRead = seqs.length > 0 && upTo >= seqs[0]! ? count - seqs.length : 0;
  const kept = { seqs: [] as number[], messages: [] as string[], count: count - unlistedRead };
  seqs.forEach((seq, index) => {
    const amendment = amended?.get(seq);
    if (seq <= upTo || amendment?.json === null) return void kept.count--;
    kept.seqs.push(seq);
    kept.messages.push(amendment?.json ?? messages[index]!);
  });
  return kept;
}

/**
 * The messages `seqs` names from the previous push and the new message; undefined: unseen.
 * Both lists are oldest first, so one walk along the previous push finds them (no map per push).
 */
function fromPrevious(window: UnreadWindow, seqs: readonly number[], newest: Message) {
  let at = 0;
  return seqs.map((seq) => {
    if (seq === newest.seq) return JSON.stringify(newest);
    while (at < window.seqs.length && window.seqs[at]! < seq) at++;
    return window.seqs[at] === seq ? window.messages[at] : undefined;
  });
}

/** The message a push follows (the newest, of messages from the store): its chat, time and seq. */
type PushedAfter = Pick<DeliveredEnvelope, "chat" | "sent_at"> & { seq: number };

/** The receiver side's `unread_messages` push after `message`. */
function unreadDelivery(
  message: PushedAfter,
  push: { chatId: string; side: Side; count: number; messages: readonly string[] },
): Delivery {
  const { chatId, side, count, messages } = push;
  return {
    afterSeq: message.seq,
    envelope: {
      chat: message.chat,
      audience: { to: "side", side },
      frame: { type: "unread_messages", chat_id: chatId, count },
      sent_at: message.sent_at,
    },
    text: unreadPushText(chatId, count, messages),
  };
}

/**
 * The push's wire text as one flat string, made by a single `join`: a template literal around
 * the joined messages leaves a rope, which the socket's send then copies into a flat string
 * once more (a push of 50 messages is 15 KiB or more, one per message sent).
 */
function unreadPushText(chatId: string, count: number, messages: readonly string[]): string {
  const parts = [
    `{"type":"unread_messages","chat_id":${JSON.stringify(chatId)},"count":${count},"messages":[`,
  ];
  for (const json of messages) parts.push(json, ",");
  if (messages.length > 0) parts.pop();
  parts.push("]}");
  return parts.join("");
}
