import { createAmendmentReplay } from "./amendment_replay.ts";
import {
  type ChatEnvelope,
  chatEnvelopeSchema,
  type ChatFrame,
  resyncRequestSchema,
  type UserEvent,
  userEventSchema,
} from "./events.ts";
import type { ChatStore, EventBus, SerialisedEvent, Subjects } from "./ports.ts";
import { otherSide, type StoredMessage, toClientMessage } from "./types.ts";
import { createUnreadPushes } from "./unread_push.ts";

/** The `unread_messages` push as the feed hands it to sockets: its messages are in the text. */
export interface UnreadPushFrame {
  type: "unread_messages";
  chat_id: string;
  count: number;
}

export type DeliveredEnvelope = Omit<ChatEnvelope, "frame"> & {
  frame: ChatFrame | UnreadPushFrame;
};

/** One event of a chat as this instance received it; its wire text is made once for all sockets. */
export interface Delivery {
  readonly envelope: DeliveredEnvelope;
  /** The frame as JSON, serialised on first use and shared by every socket. */
  readonly text: string;
  /** This instance published it: the client JSON of the messages `envelope.unread` names. */
  readonly unreadMessages?: readonly string[] | undefined;
}

export type ChatListener = (delivery: Delivery) => void;
export type UserListener = (event: UserEvent) => void;

export interface FeedOptions {
  /** How long an out-of-order message waits for the ones before it before they are read from the store. */
  gapWaitMs?: number;
  onError?: (error: unknown, context: string) => void;
  /** How often messages stored but never delivered are looked for (see `sweep`); unset: never. */
  sweepEveryMs?: number;
  /** Told how many messages a sweep delivered from the store. */
  onRecovered?: (messages: number) => void;
}

/** Events that name a message by its seq or id, and so must not reach a socket before it. */
const ABOUT_MESSAGES: ReadonlySet<string> = new Set([
  "message_read",
  "messages_read",
  "message_deleted",
  "message_edited",
]);

/** How far back republishRecent() looks: longer than a NATS reconnect takes. */
const RECENT_MS = 120_000;
const MAX_RECENT = 50_000;
/** The outage a resync request that does not say its length is taken to cover. */
const DEFAULT_RESYNC_WINDOW_MS = 10 * 60_000;

interface ChatEntry {
  listeners: Set<ChatListener>;
  /** seq of the last chat_message delivered; null until the baseline is read. */
  lastSeq: number | null;
  ready: Promise<void>;
  /** Messages that arrived ahead of a gap, by seq. */
  ahead: Map<number, Delivery>;
  /** Events that arrived before the baseline was known. */
  early: Delivery[];
  /**
   * Events about messages (read, deleted, edited) that arrived while messages waited ahead of a
   * gap, each with the highest seq it may be about: it goes out after that message, never
   * before.
   */
  behind: Array<{ afterSeq: number; delivery: Delivery }>;
  gapTimer: ReturnType<typeof setTimeout> | undefined;
  unsubscribe: () => void;
}

/**
 * This instance's view of the bus: one bus subscription per chat however many sockets want
 * it, with chat messages released strictly in seq order. A message that arrives after a gap
 * waits briefly for the missing ones, which are then read from the store (persist, then
 * publish: the store always has them).
 */
export function createChatFeed(
  deps: { bus: EventBus; store: ChatStore; subjects: Subjects },
  options: FeedOptions = {},
) {
  const { bus, store, subjects } = deps;
  const gapWaitMs = options.gapWaitMs ?? 100;
  const onError = options.onError ?? (() => {});
  const chats = new Map<string, ChatEntry>();
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  /** Each chat's newest message as this instance published it, for republishRecent(). */
  const recent = new Map<string, { payload: Uint8Array; at: number }>();
  /**
   * User-event listeners by the user's subject. User events (new chats, membership changes,
   * disconnects) are rare, so one bus subscription takes every user's while any listener is
   * here: a subscription per user cost about a kilobyte per socket and a SUB and UNSUB for NATS
   * at every connect and close.
   */
  const userListeners = new Map<string, Set<UserListener>>();
  let unsubscribeUsers: (() => void) | undefined;
  const resyncListeners = new Set<() => void>();
  let unsubscribeResync: (() => void) | undefined;
  function rememberNewest(chatId: string, payload: Uint8Array) {
    recent.delete(chatId);
    recent.set(chatId, { payload, at: Date.now() });
    // oldest first: drop what is past the window, and never keep more than a bound
    for (const [oldest, entry] of recent) {
      if (recent.size <= MAX_RECENT && entry.at >= Date.now() - RECENT_MS) break;
      recent.delete(oldest);
    }
  }
  /** The event this instance is publishing right now: the bus hands it back synchronously. */
  let publishing: { payload: Uint8Array; delivery: Delivery } | undefined;
  const unreadPushes = createUnreadPushes({ store, onError });
  /** Each followed chat's stored last seq at the previous sweep. */
  let storedAtLastSweep = new Map<string, number>();
  let sweepTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const amendments = createAmendmentReplay({
    store,
    followed: () => [...chats].flatMap(([chatId, entry]) => entry.lastSeq === null ? [] : [chatId]),
    deliver(chatId, seq, envelope) {
      const entry = chats.get(chatId);
      if (!entry || entry.lastSeq === null) return;
      const delivery = createDelivery(envelope);
      if (seq <= entry.lastSeq) deliver(chatId, entry, delivery);
      // the message waits behind a gap as the bus carried it, before this amendment
      else if (entry.ahead.has(seq)) entry.behind.push({ afterSeq: seq, delivery });
      // else the message is still to be read from the store, amended
    },
    onError,
  });

  function deliver(chatId: string, entry: ChatEntry, delivery: Delivery) {
    amendments.delivered(delivery.envelope.frame);
    for (const listener of entry.listeners) {
      try {
        listener(delivery);
      } catch (error) {
        onError(error, "chat listener");
      }
    }
    const { frame } = delivery.envelope;
    if (frame.type === "chat_message") {
      unreadPushes.after(chatId, delivery, {
        send: (push) => deliver(chatId, entry, push),
        stillFollowed: () => chats.get(chatId) === entry,
      });
    } else if (frame.type === "message_edited") unreadPushes.edited(chatId, frame.message);
  }

  function release(chatId: string, entry: ChatEntry, delivery: Delivery) {
    const frame = delivery.envelope.frame;
    if (frame.type !== "chat_message") {
      if (entry.ahead.size === 0 || !ABOUT_MESSAGES.has(frame.type)) {
        return deliver(chatId, entry, delivery);
      }
      entry.behind.push({ afterSeq: Math.max(...entry.ahead.keys()), delivery });
      return;
    }
    const lastSeq = entry.lastSeq!;
    const seq = frame.message.seq;
    if (seq <= lastSeq) return; // already delivered (or in the store before we joined)
    if (seq > lastSeq + 1) {
      entry.ahead.set(seq, delivery);
      entry.gapTimer ??= setTimeout(() => fillGap(chatId, entry), gapWaitMs);
      return;
    }
    entry.lastSeq = seq;
    deliver(chatId, entry, delivery);
    drainAhead(chatId, entry);
  }

  function drainAhead(chatId: string, entry: ChatEntry) {
    // what the store delivered while it also waited here
    for (const seq of entry.ahead.keys()) {
      if (seq <= entry.lastSeq!) entry.ahead.delete(seq);
    }
    let next = entry.ahead.get(entry.lastSeq! + 1);
    while (next) {
      entry.ahead.delete(entry.lastSeq! + 1);
      entry.lastSeq! += 1;
      deliver(chatId, entry, next);
      next = entry.ahead.get(entry.lastSeq! + 1);
    }
    while (entry.behind.length > 0 && entry.behind[0]!.afterSeq <= entry.lastSeq!) {
      deliver(chatId, entry, entry.behind.shift()!.delivery);
    }
    if (entry.ahead.size === 0 && entry.gapTimer !== undefined) {
      clearTimeout(entry.gapTimer);
      entry.gapTimer = undefined;
    }
  }

  async function fillGap(chatId: string, entry: ChatEntry) {
    entry.gapTimer = undefined;
    if (chats.get(chatId) !== entry || entry.ahead.size === 0) return;
    const firstAhead = Math.min(...entry.ahead.keys());
    const sample = entry.ahead.get(firstAhead)!.envelope;
    try {
      const missing = await store.messagesBetween(chatId, entry.lastSeq! + 1, firstAhead - 1);
      if (chats.get(chatId) !== entry) return;
      deliverFromStore(chatId, entry, missing, sample.chat);
    } catch (error) {
      onError(error, "gap fill");
    }
    drainAhead(chatId, entry);
    if (entry.ahead.size > 0 && chats.get(chatId) === entry) {
      entry.gapTimer ??= setTimeout(() => fillGap(chatId, entry), gapWaitMs);
    }
  }

  /**
   * Messages read from the store, delivered in seq order from the one after the last delivered.
   * The bus may have delivered some of them while they were being read: those are skipped; a
   * seq missing from `messages` stops the delivery there, and the gap stays to be filled.
   */
  function deliverFromStore(
    chatId: string,
    entry: ChatEntry,
    messages: readonly StoredMessage[],
    chat: ChatEnvelope["chat"],
  ) {
    for (const message of messages) {
      if (message.seq <= entry.lastSeq!) continue;
      if (message.seq !== entry.lastSeq! + 1) break;
      entry.lastSeq = message.seq;
      amendments.deliveredStored(message);
      deliver(
        chatId,
        entry,
        createDelivery({
          chat,
          audience: { to: "all" },
          frame: { type: "chat_message", chat_id: chatId, message: toClientMessage(message) },
          sent_at: Date.parse(message.created_at),
        }),
      );
    }
  }

  /** Hears resync requests while anyone here needs them: a followed chat or a listener. */
  function heedResync() {
    if (chats.size > 0 || resyncListeners.size > 0) {
      unsubscribeResync ??= bus.subscribe(subjects.resync, onResyncRequest);
    } else {
      unsubscribeResync?.();
      unsubscribeResync = undefined;
    }
  }

  function onResyncRequest(payload: Uint8Array) {
    // in the background: it reports its own failures
    void amendments.request(resyncWindow(payload));
    for (const listener of [...resyncListeners]) {
      try {
        listener();
      } catch (error) {
        onError(error, "resync listener");
      }
    }
  }

  /** How far back a resync request asks to look; one that does not say (or garbles it): far. */
  function resyncWindow(payload: Uint8Array): number {
    try {
      const request = resyncRequestSchema.safeParse(JSON.parse(decoder.decode(payload)));
      if (request.success) return request.data.within_ms;
    } catch {
      // a request all the same
    }
    return DEFAULT_RESYNC_WINDOW_MS;
  }

  function decode(payload: Uint8Array, context: string): unknown {
    try {
      return JSON.parse(decoder.decode(payload));
    } catch (error) {
      onError(error, context);
      return undefined;
    }
  }

  function deliverUserEvent(payload: Uint8Array, subject: string) {
    const listeners = userListeners.get(subject);
    if (!listeners) return;
    const parsed = userEventSchema.safeParse(decode(payload, "user event"));
    if (!parsed.success) return onError(parsed.error, "user event");
    // a copy: a listener that one of these adds starts with the next event, not this one
    for (const listener of [...listeners]) {
      try {
        listener(parsed.data);
      } catch (error) {
        onError(error, "user listener");
      }
    }
  }

  function onPayload(chatId: string, payload: Uint8Array) {
    const entry = chats.get(chatId);
    if (!entry) return;
    let delivery: Delivery;
    if (publishing?.payload === payload) {
      delivery = publishing.delivery; // our own event: no need to read it back
    } else {
      // Validated on receipt: instances of different versions share the bus.
      const parsed = chatEnvelopeSchema.safeParse(decode(payload, "chat event"));
      if (!parsed.success) return onError(parsed.error, "chat event");
      delivery = createDelivery(parsed.data);
    }
    if (entry.lastSeq === null) entry.early.push(delivery);
    else release(chatId, entry, delivery);
  }

  async function openChats(chatIds: readonly string[]) {
    const fresh: Array<[string, ChatEntry]> = [];
    let settle!: { resolve: () => void; reject: (error: unknown) => void };
    const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    ready.catch(() => {}); // awaited below; also by later joiners
    for (const chatId of chatIds) {
      if (chats.has(chatId)) continue;
      const entry: ChatEntry = {
        listeners: new Set(),
        lastSeq: null,
        ready,
        ahead: new Map(),
        early: [],
        behind: [],
        gapTimer: undefined,
        unsubscribe: () => {},
      };
      chats.set(chatId, entry);
      entry.unsubscribe = bus.subscribe(
        subjects.chat(chatId),
        (payload) => onPayload(chatId, payload),
      );
      fresh.push([chatId, entry]);
    }
    heedResync();
    if (fresh.length === 0) return settle.resolve();
    try {
      // Subscribed (and confirmed) first, then read: nothing committed in between is missed.
      // A bus that does not answer in time only delays its own events: gaps fill from the store.
      await bus.check(AbortSignal.timeout(1_000));
      const lastSeqs = await store.lastSeqs(fresh.map(([chatId]) => chatId));
      for (const [chatId, entry] of fresh) {
        entry.lastSeq = lastSeqs.get(chatId) ?? 0;
        const early = entry.early.splice(0);
        for (const delivery of early) release(chatId, entry, delivery);
      }
      settle.resolve();
    } catch (error) {
      for (const [chatId, entry] of fresh) {
        if (entry.listeners.size === 0) close(chatId, entry);
      }
      settle.reject(error);
      throw error;
    }
  }

  function close(chatId: string, entry: ChatEntry) {
    entry.unsubscribe();
    if (entry.gapTimer !== undefined) clearTimeout(entry.gapTimer);
    chats.delete(chatId);
    unreadPushes.forget(chatId);
    heedResync();
  }

  scheduleSweep();
  return {
    /**
     * Publishes a chat event to every instance; this instance's sockets get it at once. The
     * frame is serialised once, for the bus and for every local socket.
     */
    publishChat(chatId: string, envelope: ChatEnvelope, serialised: SerialisedEvent = {}): void {
      const text = serialised.frame ?? JSON.stringify(envelope.frame);
      const unread = envelope.unread === undefined
        ? ""
        : `"unread":${JSON.stringify(envelope.unread)},`;
      const payload = encoder.encode(
        `{"chat":${JSON.stringify(envelope.chat)},"audience":${
          JSON.stringify(envelope.audience)
        },"sent_at":${envelope.sent_at},${unread}"frame":${text}}`,
      );
      publishing = {
        payload,
        delivery: createDelivery(envelope, { ...serialised, frame: text }),
      };
      try {
        bus.publish(subjects.chat(chatId), payload);
      } finally {
        publishing = undefined;
      }
      if (envelope.frame.type === "chat_message") rememberNewest(chatId, payload);
    },

    /**
     * After this instance's bus came back: what it published while away never reached the
     * others (the NATS client drops its buffer when it redials). Sending each recently active
     * chat's newest message again lets every other instance see the gap and read the missing
     * messages from the store; where nothing is missing it is a duplicate, and dropped.
     */
    republishRecent(): void {
      const since = Date.now() - RECENT_MS;
      for (const [chatId, { payload, at }] of recent) {
        if (at < since) recent.delete(chatId);
        else bus.publish(subjects.chat(chatId), payload);
      }
    },

    /**
     * After this instance's bus came back. User events (bans, disconnects, membership changes,
     * new chats) published while it was away are lost: its own to the other instances, theirs
     * to it. Unlike messages they have no seq that shows the gap, so every instance, this one
     * included, is asked to check its sockets' access against the store.
     */
    requestResync(lostForMs: number): void {
      const request = { within_ms: Math.ceil(lostForMs) };
      bus.publish(subjects.resync, encoder.encode(JSON.stringify(request)));
    },

    /**
     * Calls `listener` on every resync request, this instance's and the others'. (The feed
     * itself replays the chats' edits and deletions of the outage on each.)
     */
    onResync(listener: () => void): () => void {
      resyncListeners.add(listener);
      heedResync();
      return () => {
        if (resyncListeners.delete(listener)) heedResync();
      };
    },

    publishUser(userId: string, event: UserEvent): void {
      bus.publish(subjects.user(userId), encoder.encode(JSON.stringify(event)));
    },

    /**
     * Starts delivering the chats' events to `listener`; resolves once each chat's position
     * is known, so every message committed after that is delivered. Returns the leave.
     */
    async join(chatIds: readonly string[], listener: ChatListener): Promise<() => void> {
      await openChats(chatIds);
      const entries = chatIds.map((chatId) => [chatId, chats.get(chatId)!] as const);
      for (const [, entry] of entries) entry.listeners.add(listener);
      try {
        await Promise.all(entries.map(([, entry]) => entry.ready));
      } catch (error) {
        leave(entries, listener);
        throw error;
      }
      return () => leave(entries, listener);
    },

    /** Delivers the user-level events (new chats, disconnects) of `userId`. */
    onUser(userId: string, listener: UserListener): () => void {
      const subject = subjects.user(userId);
      const listeners = userListeners.get(subject) ?? new Set<UserListener>();
      userListeners.set(subject, listeners.add(listener));
      unsubscribeUsers ??= bus.subscribe(subjects.allUsers, deliverUserEvent);
      return () => {
        if (!listeners.delete(listener) || listeners.size > 0) return;
        userListeners.delete(subject);
        if (userListeners.size > 0) return;
        unsubscribeUsers?.();
        unsubscribeUsers = undefined;
      };
    },

    /**
     * Delivers from the store what the bus may have lost (after a reconnect): every followed
     * chat whose stored last seq is ahead of what this instance delivered.
     */
    async catchUp(): Promise<void> {
      const followed = followedChats();
      if (followed.length === 0) return;
      const lastSeqs = await store.lastSeqs(followed.map(([chatId]) => chatId));
      await deliverStored(followed, lastSeqs);
    },

    /** Stops what the feed does in the background on its own. */
    close(): void {
      closed = true;
      clearTimeout(sweepTimer);
      amendments.close();
    },

    /** Chats this instance currently follows (for metrics and tests). */
    get size(): number {
      return chats.size;
    },
  };

  function followedChats(): Array<[string, ChatEntry]> {
    return [...chats].filter(([, entry]) => entry.lastSeq !== null);
  }

  /**
   * Delivers each chat's messages from the store, from the one after the last delivered up to
   * its seq in `upTo`; resolves with how many were delivered.
   */
  async function deliverStored(
    followed: ReadonlyArray<[string, ChatEntry]>,
    upTo: ReadonlyMap<string, number>,
  ): Promise<number> {
    let delivered = 0;
    for (const [chatId, entry] of followed) {
      const stored = upTo.get(chatId) ?? 0;
      if (chats.get(chatId) !== entry || stored <= entry.lastSeq!) continue;
      // read before anything is counted as delivered: a read that fails leaves the gap to
      // the next catch-up or gap fill, and the bus's messages wait behind it meanwhile
      const [missing, chat] = await Promise.all([
        store.messagesBetween(chatId, entry.lastSeq! + 1, stored),
        store.getChat(chatId),
      ]);
      if (!chat || chats.get(chatId) !== entry) continue;
      const before = entry.lastSeq!;
      const participants = { user_id: chat.user_id, vendor_id: chat.vendor_id };
      deliverFromStore(chatId, entry, missing, participants);
      const news = missing.filter((message) =>
        message.seq > before && message.seq <= entry.lastSeq!
      );
      delivered += news.length;
      // no later message brings the receivers' unread push: it is read from the store
      const sides = new Set(news.map((message) => otherSide(message.sender_side)));
      for (const side of sides) {
        unreadPushes.afterStored(chatId, side, { chat: participants, sent_at: Date.now() }, {
          send: (push) => deliver(chatId, entry, push),
          stillFollowed: () => chats.get(chatId) === entry,
        });
      }
      drainAhead(chatId, entry);
    }
    return delivered;
  }

  /**
   * Every `sweepEveryMs`: messages stored before the previous sweep that are still not
   * delivered are read from the store. Their publish never came (the sender's instance lost the
   * database's answer after the commit, or the bus dropped it), and no later message showed the
   * gap. Messages in flight at one sweep are delivered by the bus before the next.
   */
  async function sweep() {
    const previous = storedAtLastSweep;
    const followed = followedChats();
    storedAtLastSweep = followed.length === 0
      ? new Map()
      : await store.lastSeqs(followed.map(([chatId]) => chatId));
    const stalled = followed.filter(([chatId, entry]) =>
      (previous.get(chatId) ?? 0) > entry.lastSeq!
    );
    if (stalled.length === 0) return;
    const recovered = await deliverStored(stalled, previous);
    if (recovered > 0) options.onRecovered?.(recovered);
  }

  function scheduleSweep() {
    if (options.sweepEveryMs === undefined || closed) return;
    sweepTimer = setTimeout(() => {
      sweep().catch((error) => onError(error, "sweep")).finally(scheduleSweep);
    }, options.sweepEveryMs);
  }

  function leave(entries: ReadonlyArray<readonly [string, ChatEntry]>, listener: ChatListener) {
    for (const [chatId, entry] of entries) {
      entry.listeners.delete(listener);
      if (entry.listeners.size === 0 && chats.get(chatId) === entry) close(chatId, entry);
    }
  }
}

export type ChatFeed = ReturnType<typeof createChatFeed>;

/** Wraps an envelope so that its frame is serialised at most once. */
export function createDelivery(envelope: ChatEnvelope, serialised: SerialisedEvent = {}): Delivery {
  let text = serialised.frame;
  return {
    envelope,
    get text() {
      return text ??= JSON.stringify(envelope.frame);
    },
    unreadMessages: serialised.unreadMessages,
  };
}
