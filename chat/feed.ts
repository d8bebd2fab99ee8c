import { createAmendmentReplay } from "./amendment_replay.ts";
import { createBusRoundTrips, subscriptionsConfirmed } from "./bus_round_trips.ts";
import { createChatPublisher } from "./chat_publisher.ts";
import { ChatSequencer, type SequencerDeps } from "./chat_sequencer.ts";
import { createDelivery, type Delivery } from "./delivery.ts";
import { startFeedSweeps } from "./feed_sweep.ts";
import { type ChatEnvelope, chatEnvelopeSchema, readBusPayload, type UserEvent } from "./events.ts";
import type { ChatStore, EventBus, SerialisedEvent, Subjects } from "./ports.ts";
import { createResyncRequests } from "./resync.ts";
import { type Chat, otherSide, sideOf, type StoredMessage } from "./types.ts";
import { createUnreadPushes } from "./unread_push.ts";
import { createUserFeed, type UserListener } from "./user_feed.ts";

export {
  createDelivery,
  type DeliveredEnvelope,
  type Delivery,
  type UnreadPushFrame,
} from "./delivery.ts";
export type { UserListener } from "./user_feed.ts";

export type ChatListener = (delivery: Delivery) => void;
/** Leaves the chats a join joined: all of them, or those of them named (again: nothing more). */
export type FeedLeave = (chatIds?: readonly string[]) => void;

/** How far another instance's clock may be behind this one's, for the windows read again. */
const PUBLISHER_CLOCK_SKEW_MS = 10_000;

export interface FeedOptions {
  /** How long an out-of-order message waits for the ones before it before they are read from the store. */
  gapWaitMs?: number;
  onError?: (error: unknown, context: string) => void;
  /**
   * How often messages, edits, deletions and read marks stored but never delivered are looked
   * for (see `sweepMessages`, `sweepAmendments`); unset: never.
   */
  sweepEveryMs?: number;
  /** Told how many messages a sweep delivered from the store. */
  onRecovered?: (messages: number) => void;
  /** Told how many edits, deletions and read marks a sweep sent again from the store. */
  onAmendmentsRecovered?: (amendments: number) => void;
  /**
   * Told of how many chats followed through a sweep's window had their read marks read, their
   * tallies differing (a mark lost, or very late).
   */
  onReadTalliesDiffering?: (chats: number) => void;
}

interface ChatEntry {
  /**
   * Each with when it joined (this clock): a replayed amendment made before that is not its
   * (see Delivery.amendedAt).
   */
  listeners: Map<ChatListener, number>;
  /** Releases the chat's events in seq order; its lastSeq is null until the baseline is read. */
  sequencer: ChatSequencer;
  ready: Promise<void>;
  unsubscribe: () => void;
  /** When this instance began to follow the chat (its clock). */
  since: number;
}

/**
 * This instance's view of the bus: one bus subscription per chat however many sockets want
 * it, with chat messages released strictly in seq order (see chat_sequencer.ts), and what the
 * bus lost read from the store: after a reconnect (`catchUp`), and by a periodic sweep for
 * messages whose publish never came. User events and resync requests have their own modules;
 * the feed composes them behind one interface.
 */
export function createChatFeed(
  deps: { bus: EventBus; store: ChatStore; subjects: Subjects },
  options: FeedOptions = {},
) {
  const { bus, store, subjects } = deps;
  const gapWaitMs = options.gapWaitMs ?? 100;
  const onError = options.onError ?? (() => {});
  const chats = new Map<string, ChatEntry>();
  const publisher = createChatPublisher({ bus, subjects });
  const roundTrips = createBusRoundTrips(bus);
  const users = createUserFeed({ bus, store, subjects }, { onError });
  const unreadPushes = createUnreadPushes({ store, onError });
  const amendments = createAmendmentReplay({
    store,
    followed: () => new Map(followedChats().map(([chatId, entry]) => [chatId, entry.since])),
    deliver(chatId, seq, envelope, stillOwed, amendedAt) {
      const delivery = createDelivery(envelope);
      delivery.amendedAt = amendedAt;
      chats.get(chatId)?.sequencer.replayed(seq, delivery, stillOwed);
    },
    onError,
    onReadTalliesDiffering: options.onReadTalliesDiffering,
  });
  const resync = createResyncRequests({ bus, subjects, followsChats: () => chats.size > 0 }, {
    // in the background: it reports its own failures
    onRequest: (withinMs) => void amendments.request(withinMs),
    onError,
  });

  /**
   * An edit as it is delivered: one committed before a read mark of its message that went out
   * here, but heard after it (its instance published later), carries the message unread, and a
   * client shown it would take back the read; it goes out marked read, at the mark's time.
   */
  function withReadMark(delivery: Delivery): Delivery {
    const { envelope } = delivery;
    if (envelope.frame.type !== "message_edited") return delivery;
    const { message } = envelope.frame;
    const readAt = amendments.readSince(message, envelope.chat.user_id);
    if (readAt === undefined) return delivery;
    const frame = { ...envelope.frame, message: { ...message, is_read: true, read_at: readAt } };
    const patched = createDelivery({ ...envelope, frame });
    patched.roundTripTick = delivery.roundTripTick;
    patched.amendedAt = delivery.amendedAt;
    return patched;
  }

  function deliver(chatId: string, entry: ChatEntry, delivered: Delivery) {
    // a live amendment whose publish the bus delayed past a replay that sent it
    if (amendments.alreadyDelivered(delivered.envelope.frame)) return;
    const delivery = withReadMark(delivered);
    amendments.delivered(delivery.envelope.frame, delivery.envelope.up_to_marked === true);
    delivery.roundTripTick ??= roundTrips.tick();
    const { amendedAt } = delivery;
    for (const [listener, since] of entry.listeners) {
      // replayed, and made before the listener joined: the store it read since had it (a
      // client back from another instance was sent the message amended in its first page)
      if (amendedAt !== undefined && amendedAt < since) continue;
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
    else if (frame.type === "message_deleted" || frame.type === "message_read") {
      unreadPushes.gone(chatId, frame.seq);
    } else if (frame.type === "messages_read" && delivery.envelope.up_to_marked) {
      // (an instance that predates up_to_marked sends the seq asked, maybe past newer messages)
      // the reader is a participant: the customer, or on the vendor's side
      const side = sideOf(delivery.envelope.chat, frame.reader_id, true) ?? "vendor";
      unreadPushes.readUpTo(chatId, side, frame.up_to_seq);
    }
  }

  function onPayload(chatId: string, payload: Uint8Array) {
    const entry = chats.get(chatId);
    if (!entry) return;
    // our own event, handed back as it is published: no need to read it back
    let delivery = publisher.beingPublished(payload);
    if (delivery === undefined) {
      const report = (error: unknown) => onError(error, "chat event");
      const envelope = readBusPayload(payload, chatEnvelopeSchema, report);
      if (envelope === undefined) return;
      delivery = createDelivery(envelope);
      delivery.roundTripTick = 0;
    }
    entry.sequencer.receive(delivery);
  }

  const sequencerDeps: SequencerDeps = {
    store,
    onStored: (message) => amendments.deliveredStored(message),
    afterStored(chatId, news, chat) {
      const entry = chats.get(chatId);
      if (entry) pushAfterStored(chatId, entry, news, chat);
    },
    gapWaitMs,
    // events about a chat's messages not kept while they waited for a gap to be filled: read
    // again from the store, from when the first was sent (give or take its publisher's clock)
    onHeldDropped: (_chatId, sinceMs) =>
      void amendments.request(Date.now() - sinceMs + PUBLISHER_CLOCK_SKEW_MS),
    onError,
  };

  /**
   * Adds `listener` to each chat's entry, opening the chats this instance does not follow yet,
   * all before anything is awaited: a chat whose other listeners all leave meanwhile stays open
   * for this one. Returns the entries, whose `ready` settles when each chat's position is known.
   */
  function follow(chatIds: readonly string[], listener: ChatListener): Array<[string, ChatEntry]> {
    const fresh: Array<[string, ChatEntry]> = [];
    const { promise: ready, resolve, reject } = Promise.withResolvers<void>();
    ready.catch(() => {}); // awaited by the joiners
    const entries = chatIds.map((chatId): [string, ChatEntry] => {
      let entry = chats.get(chatId);
      if (!entry) {
        entry = open(chatId, ready);
        fresh.push([chatId, entry]);
      }
      if (!entry.listeners.has(listener)) entry.listeners.set(listener, Date.now());
      return [chatId, entry];
    });
    resync.heed();
    if (fresh.length === 0) resolve();
    else startAfterStored(fresh).then(resolve, reject);
    return entries;
  }

  /** Follows a chat new to this instance: its subscription is in force from here on. */
  function open(chatId: string, ready: Promise<void>): ChatEntry {
    const entry: ChatEntry = {
      listeners: new Map(),
      sequencer: new ChatSequencer(
        chatId,
        (delivery) => deliver(chatId, entry, delivery),
        sequencerDeps,
      ),
      ready,
      unsubscribe: () => {},
      since: Date.now(),
    };
    chats.set(chatId, entry);
    entry.unsubscribe = bus.subscribe(
      subjects.chat(chatId),
      (payload) => onPayload(chatId, payload),
    );
    return entry;
  }

  /** Reads where the fresh chats stand; on failure their joiners leave them (see `join`). */
  async function startAfterStored(fresh: ReadonlyArray<[string, ChatEntry]>): Promise<void> {
    // Subscribed (and confirmed) first, then read: nothing committed in between is missed.
    await subscriptionsConfirmed(bus);
    const lastSeqs = await store.lastSeqs(fresh.map(([chatId]) => chatId));
    for (const [chatId, entry] of fresh) entry.sequencer.startAfter(lastSeqs.get(chatId) ?? 0);
  }

  /** Stops following the chat, unless `entry` is no longer its entry (closed already). */
  function close(chatId: string, entry: ChatEntry) {
    if (chats.get(chatId) !== entry) return;
    entry.unsubscribe();
    entry.sequencer.stop();
    chats.delete(chatId);
    unreadPushes.forget(chatId);
    resync.heed();
  }

  const sweeps = options.sweepEveryMs === undefined ? undefined : startFeedSweeps({
    followed: () =>
      new Map(followedChats().map(([chatId, entry]) => [chatId, entry.sequencer.lastSeq!])),
    lastSeqs: (chatIds) => store.lastSeqs(chatIds),
    deliverStored: (upTo, chatIds) => {
      const stillFollowed = new Set(chatIds);
      return deliverStored(followedChats().filter(([chatId]) => stillFollowed.has(chatId)), upTo);
    },
    sweepAmendments: (window) => amendments.sweep(window),
    sweepUserEvents: (window) => users.sweep(window),
  }, {
    periodMs: options.sweepEveryMs,
    onError,
    onRecovered: options.onRecovered,
    onAmendmentsRecovered: options.onAmendmentsRecovered,
  });
  return {
    /**
     * Publishes a chat event to every instance; this instance's sockets get it at once. The
     * frame is serialised once, for the bus and for every local socket.
     */
    publishChat(chatId: string, envelope: ChatEnvelope, serialised: SerialisedEvent = {}): void {
      publisher.publish(chatId, envelope, serialised);
    },

    /**
     * After this instance's bus came back: sends each recently active chat's newest message
     * again, so that every other instance sees what it lost as a gap (see chat_publisher.ts).
     */
    republishRecent(): void {
      publisher.republishRecent();
    },

    /**
     * After this instance's bus came back: asks every instance, this one included, to check
     * its sockets' access against the store, since user events published meanwhile are lost
     * (see resync.ts).
     */
    requestResync(lostForMs: number): void {
      resync.request(lostForMs);
    },

    /**
     * Calls `listener` on every resync request, this instance's and the others'. (The feed
     * itself replays the chats' edits and deletions of the outage on each.)
     */
    onResync(listener: () => void): () => void {
      return resync.listen(listener);
    },

    publishUser(userId: string, event: UserEvent): void {
      users.publish(userId, event);
    },

    /**
     * Resolves once the bus has what this instance published so far, so that no instance's
     * event caused after it can reach another instance ahead of it (see bus_round_trips.ts), or
     * once the bus did not answer in time. Never rejects.
     */
    async published(): Promise<void> {
      await bus.check().catch(() => false);
    },

    /**
     * Resolves once a round trip of the bus begun now has come back (or could not: see
     * bus_round_trips.ts), so that what other instances published before it was asked for has
     * reached this instance: for a store read to go out only after the user events published
     * before it was read. Never rejects.
     */
    roundTrip(): Promise<void> {
      return roundTrips.confirm(roundTrips.tick());
    },

    /**
     * Undefined when `delivery` may go out now to a socket that must not get it ahead of the user
     * events other instances published before it: it came on the bus, in order with them, or a
     * round trip since has brought them. Otherwise the round trip to wait for (never rejects).
     */
    roundTripBefore(delivery: Delivery): Promise<void> | undefined {
      const tick = delivery.roundTripTick;
      if (tick === undefined || roundTrips.confirmed(tick)) return undefined;
      return roundTrips.confirm(tick);
    },

    /**
     * Starts delivering the chats' events to `listener` (a chat already followed may deliver
     * before this settles); resolves once each chat's position is known, so every message
     * committed after that is delivered. Returns the leave: of every chat joined, or of those of
     * them named. When a position cannot be read, the listener leaves every chat and the error is
     * thrown.
     */
    async join(chatIds: readonly string[], listener: ChatListener): Promise<FeedLeave> {
      const entries = follow(chatIds, listener);
      try {
        await Promise.all(entries.map(([, entry]) => entry.ready));
      } catch (error) {
        leave(entries, listener);
        throw error;
      }
      return (only) => {
        if (only === undefined) return leave(entries, listener);
        const named = new Set(only);
        leave(entries.filter(([chatId]) => named.has(chatId)), listener);
      };
    },

    /**
     * The last seq of the chat this instance delivered; undefined when it does not follow the
     * chat, or has not read its position yet. 0: none, and none was stored when it began to
     * follow it, so every message of the chat comes from the feed.
     */
    deliveredUpTo(chatId: string): number | undefined {
      return chats.get(chatId)?.sequencer.lastSeq ?? undefined;
    },

    /** Delivers the user-level events (new chats, disconnects) of `userId`. */
    onUser(userId: string, listener: UserListener): () => void {
      return users.listen(userId, listener);
    },

    /**
     * Resolves once the bus subscription `onUser` listeners hear through is confirmed (see
     * user_feed.ts), so a store read begun after misses no user event published after it.
     */
    userEventsConfirmed(): Promise<void> {
      return users.confirmed();
    },

    /**
     * Delivers from the store what the bus may have lost (after a reconnect): every followed
     * chat whose stored last seq is ahead of what this instance delivered.
     */
    async catchUp(): Promise<void> {
      const followed = followedChats();
      if (followed.length === 0) return;
      const lastSeqs = await store.lastSeqs(followed.map(([chatId]) => chatId));
      const { failure } = await deliverStored(followed, lastSeqs);
      if (failure) throw failure.error;
    },

    /**
     * Stops what the feed does in the background on its own; resolves once the sweep under way
     * has ended (see repeatEvery).
     */
    async close(): Promise<void> {
      const swept = sweeps?.stop();
      amendments.close();
      // gap fills too: the sockets have gone (the planes close first), the pools are to end
      for (const entry of chats.values()) entry.sequencer.stop();
      await swept;
    },

    /** Chats this instance currently follows (for metrics and tests). */
    get size(): number {
      return chats.size;
    },
  };

  /** The chats whose position in the store is known, so that their events go out. */
  function followedChats(): Array<[string, ChatEntry]> {
    return [...chats].filter(([, entry]) => entry.sequencer.lastSeq !== null);
  }

  /**
   * Delivers each chat's messages from the store, from the one after the last delivered up to
   * its seq in `upTo`; resolves with how many were delivered, and the first read that failed.
   */
  async function deliverStored(
    followed: ReadonlyArray<[string, ChatEntry]>,
    upTo: ReadonlyMap<string, number>,
  ): Promise<{ delivered: number; failure: { error: unknown } | undefined }> {
    let delivered = 0;
    let failure: { error: unknown } | undefined;
    for (const [chatId, entry] of followed) {
      const { sequencer } = entry;
      const stored = upTo.get(chatId) ?? 0;
      if (chats.get(chatId) !== entry || stored <= sequencer.lastSeq!) continue;
      // read before anything is counted as delivered: a read that fails leaves the gap to
      // the next catch-up or gap fill, and the bus's messages wait behind it meanwhile; the
      // other chats are read all the same, and the first failure is returned
      let missing: StoredMessage[];
      let chat: Chat | null;
      try {
        [missing, chat] = await Promise.all([
          store.messagesBetween(chatId, sequencer.lastSeq! + 1, stored),
          store.getChat(chatId),
        ]);
      } catch (error) {
        failure ??= { error };
        continue;
      }
      if (!chat || chats.get(chatId) !== entry) continue;
      const participants = { user_id: chat.user_id, vendor_id: chat.vendor_id };
      const news = sequencer.deliverStored(missing, participants);
      delivered += news.length;
      pushAfterStored(chatId, entry, news, participants);
      sequencer.releaseAhead();
    }
    return { delivered, failure };
  }

  /**
   * The unread pushes owed after `news`, delivered from the store: no publisher summed them up,
   * so each receiving side's is read from the store, its read begun before the messages ahead
   * go out, whose own pushes supersede it.
   */
  function pushAfterStored(
    chatId: string,
    entry: ChatEntry,
    news: readonly StoredMessage[],
    chat: ChatEnvelope["chat"],
  ) {
    // oldest first (ChatSequencer.deliverStored): the last is the newest. Not Math.max(...):
    // a catch-up after a long outage may bring more messages than a call takes arguments
    const seq = news.at(-1)?.seq;
    if (seq === undefined) return;
    const sides = new Set(news.map((message) => otherSide(message.sender_side)));
    for (const side of sides) {
      unreadPushes.afterStored(chatId, side, { chat, sent_at: Date.now(), seq }, {
        send: (push) => deliver(chatId, entry, push),
        stillFollowed: () => chats.get(chatId) === entry,
      });
    }
  }

  function leave(entries: ReadonlyArray<readonly [string, ChatEntry]>, listener: ChatListener) {
    for (const [chatId, entry] of entries) {
      entry.listeners.delete(listener);
      if (entry.listeners.size === 0) close(chatId, entry);
    }
  }
}

export type ChatFeed = ReturnType<typeof createChatFeed>;
