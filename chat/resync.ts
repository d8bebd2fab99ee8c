import { resyncRequestSchema } from "./events.ts";
import type { EventBus, Subjects } from "./ports.ts";

/** The outage a resync request that does not say its length is taken to cover. */
export const DEFAULT_RESYNC_WINDOW_MS = 10 * 60_000;
/**
 * The longest window a request may ask every instance to read again: a day. Any instance (or
 * anything else that can publish on the subject) may send one, and a replay reads every
 * amendment of its followed chats within it.
 */
export const MAX_RESYNC_WINDOW_MS = 24 * 60 * 60_000;

/**
 * Resync requests, sent by an instance whose bus came back: user events (bans, disconnects,
 * membership changes, new chats) published while it was away are lost, its own to the other
 * instances and theirs to it. Unlike messages they have no seq that shows the gap, so every
 * instance, this one included, is asked to check against the store. The requests are heard
 * on one bus subscription while anyone here needs them: a listener, or `followsChats()`. An
 * instance heeds its own request at once, not when the bus hands it back: what it catches up
 * from the store right after must find its sockets already held (see ws/sanction_screens.ts).
 */
export function createResyncRequests(
  deps: { bus: EventBus; subjects: Subjects; followsChats: () => boolean },
  options: {
    /** Told of each request first, with how far back it asks to look. */
    onRequest: (withinMs: number) => void;
    onError: (error: unknown, context: string) => void;
  },
) {
  const { bus, subjects } = deps;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const listeners = new Set<() => void>();
  /** Marks this instance's requests, which it heeds as it sends them, not again on receipt. */
  const origin = crypto.randomUUID();
  let unsubscribe: (() => void) | undefined;

  function heed() {
    if (deps.followsChats() || listeners.size > 0) {
      unsubscribe ??= bus.subscribe(subjects.resync, onPayload);
    } else {
      unsubscribe?.();
      unsubscribe = undefined;
    }
  }

  function onPayload(payload: Uint8Array) {
    const request = readRequest(payload);
    if (request.from !== origin) heedRequest(request.withinMs);
  }

  function heedRequest(withinMs: number) {
    options.onRequest(withinMs);
    for (const listener of [...listeners]) {
      try {
        listener();
      } catch (error) {
        options.onError(error, "resync listener");
      }
    }
  }

  /**
   * Who sent a resync request, and how far back it asks to look: at most MAX_RESYNC_WINDOW_MS;
   * one that does not say (or garbles it): DEFAULT_RESYNC_WINDOW_MS.
   */
  function readRequest(payload: Uint8Array): { from?: string; withinMs: number } {
    try {
      const request = resyncRequestSchema.safeParse(JSON.parse(decoder.decode(payload)));
      if (request.success) {
        const withinMs = Math.min(request.data.within_ms, MAX_RESYNC_WINDOW_MS);
        return request.data.from === undefined
          ? { withinMs }
          : { from: request.data.from, withinMs };
      }
    } catch {
      // a request all the same
    }
    return { withinMs: DEFAULT_RESYNC_WINDOW_MS };
  }

  return {
    /** Asks every instance, this one first, to resync after events were lost for `lostForMs`. */
    request(lostForMs: number): void {
      const request = { within_ms: Math.ceil(lostForMs), from: origin };
      bus.publish(subjects.resync, encoder.encode(JSON.stringify(request)));
      heedRequest(request.within_ms);
    },

    /** Calls `listener` on every request, this instance's and the others'; returns the stop. */
    listen(listener: () => void): () => void {
      listeners.add(listener);
      heed();
      return () => {
        if (listeners.delete(listener)) heed();
      };
    },

    /** Subscribes or lets go as `followsChats()` changed. */
    heed,
  };
}
