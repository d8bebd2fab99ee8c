import { readBusPayload, type UserEvent, userEventSchema } from "./events.ts";
import type { EventBus, Subjects } from "./ports.ts";

export type UserListener = (event: UserEvent) => void;

/**
 * User events (new chats, membership changes, disconnects) for this instance's listeners, by
 * user. They are rare, so one bus subscription takes every user's while any listener is here:
 * a subscription per user cost about a kilobyte per socket and a SUB and UNSUB for NATS at
 * every connect and close.
 */
export function createUserFeed(
  deps: { bus: EventBus; subjects: Subjects },
  options: { onError: (error: unknown, context: string) => void },
) {
  const { bus, subjects } = deps;
  const { onError } = options;
  const encoder = new TextEncoder();
  /** Listeners by the user's subject, as the bus names the subject of each event. */
  const listenersBySubject = new Map<string, Set<UserListener>>();
  let unsubscribe: (() => void) | undefined;

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
     * Hands `event` to this instance's listeners of `userId` alone, as the bus would have (for
     * an event the store shows and the bus may have lost).
     */
    deliverHere(userId: string, event: UserEvent): void {
      tell(subjects.user(userId), event);
    },

    /** Calls `listener` with every event of `userId`; returns the stop. */
    listen(userId: string, listener: UserListener): () => void {
      const subject = subjects.user(userId);
      const listeners = listenersBySubject.get(subject) ?? new Set<UserListener>();
      listenersBySubject.set(subject, listeners.add(listener));
      unsubscribe ??= bus.subscribe(subjects.allUsers, deliver);
      return () => {
        if (!listeners.delete(listener) || listeners.size > 0) return;
        listenersBySubject.delete(subject);
        if (listenersBySubject.size > 0) return;
        unsubscribe?.();
        unsubscribe = undefined;
      };
    },
  };
}
