import { subscriptionsConfirmed } from "./bus_round_trips.ts";
import { readBusPayload, type UserEvent, userEventSchema } from "./events.ts";
import type { ChatStore, EventBus, RecentWindow, Subjects } from "./ports.ts";

export type UserListener = (event: UserEvent) => void;

/**
 * User events (new chats, membership changes, disconnects) for this instance's listeners, by
 * user. They are rare, so one bus subscription takes every user's while any listener is here:
 * a subscription per user cost about a kilobyte per socket and a SUB and UNSUB for NATS at
 * every connect and close.
 */
export function createUserFeed(
  deps: {
    bus: EventBus;
    store: Pick<ChatStore, "chatsCreatedWithin" | "membersAddedWithin" | "membersRemovedWithin">;
    subjects: Subjects;
  },
  options: { onError: (error: unknown, context: string) => void },
) {
  const { bus, store, subjects } = deps;
  const { onError } = options;
  const encoder = new TextEncoder();
  /** Listeners by the user's subject, as the bus names the subject of each event. */
  const listenersBySubject = new Map<string, Set<UserListener>>();
  /** The bus subscription while any listener is here, with its confirmation by the bus. */
  let subscription: { unsubscribe: () => void; confirmed: Promise<void> } | undefined;

  function subscribe() {
    const unsubscribe = bus.subscribe(subjects.allUsers, deliver);
    return { unsubscribe, confirmed: subscriptionsConfirmed(bus) };
  }

  function deliver(payload: Uint8Array, subject: string) {
    if (!listenersBySubject.has(subject)) return;
    const event = readBusPayload(payload, userEventSchema, (error) => onError(error, "user event"));
    if (event !== undefined) tell(subject, event);
  }

  function tell(subject: string, event: UserEvent) {
    const listeners = listenersBySubject.get(subject);
    if (!listeners) return;
    // a copy: a listener that one of these adds starts with the next event, not this one
    for (const listener of [...listeners]) {
      try {
        listener(event);
      } catch (error) {
        onError(error, "user listener");
      }
    }
  }

  return {
    /** Publishes `event` to the listeners of `userId` on every instance. */
    publish(userId: string, event: UserEvent): void {
      bus.publish(subjects.user(userId), encoder.encode(JSON.stringify(event)));
    },

    /**
     * Hands the user events the store shows within `window` (new chats, members added and
     * removed) to this instance's listeners, as the bus would have: it may have lost them. A
     * socket that had them takes no notice.
     */
    async sweep(window: RecentWindow): Promise<void> {
      const [created, added, removed] = await Promise.all([
        store.chatsCreatedWithin(window),
        store.membersAddedWithin(window),
        store.membersRemovedWithin(window),
      ]);
      for (const chat of created) {
        const event: UserEvent = { type: "chat_created", chat };
        tell(subjects.user(chat.user_id), event);
        tell(subjects.user(chat.vendor_id), event);
      }
      for (const { vendor_id, user_id } of added) {
        tell(subjects.user(user_id), { type: "membership_added", vendor_id, user_id });
      }
      for (const { vendor_id, user_id } of removed) {
        tell(subjects.user(user_id), { type: "membership_revoked", vendor_id, user_id });
      }
    },

    /** Calls `listener` with every event of `userId`; returns the stop. */
    listen(userId: string, listener: UserListener): () => void {
      const subject = subjects.user(userId);
      const listeners = listenersBySubject.get(subject) ?? new Set<UserListener>();
      listenersBySubject.set(subject, listeners.add(listener));
      subscription ??= subscribe();
      return () => {
        if (!listeners.delete(listener) || listeners.size > 0) return;
        listenersBySubject.delete(subject);
        if (listenersBySubject.size > 0) return;
        subscription?.unsubscribe();
        subscription = undefined;
      };
    },

    /**
     * Resolves once the bus has confirmed the subscription the listeners hear through (at once
     * when none is, or it was confirmed before): a subscription new to the bus takes effect
     * only when the server has it, and an event another instance publishes before then is lost
     * to this one, though committed after a store read begun meanwhile. Never rejects.
     */
    confirmed(): Promise<void> {
      return subscription?.confirmed ?? Promise.resolve();
    },
  };
}
