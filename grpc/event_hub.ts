import { type ChatEnvelope, chatEnvelopeSchema } from "../chat/events.ts";
import type { EventBus } from "../chat/ports.ts";
import { EVENT_FRAME_TYPES, type ProtoChatEvent, toChatEvent } from "./convert.ts";

/** What a subject's listener hears. */
export interface EventListener {
  /** An event with its envelope; the event is shared by every listener: never change it. */
  event(envelope: ChatEnvelope, event: ProtoChatEvent): void;
  /** A payload that may have been an admin event could not be read: one may be missing. */
  lost(): void;
}

/** Read but not for the streams: not an admin event, or one sent again after an outage. */
const SKIPPED = Symbol("skipped");

/**
 * Chat events from the bus for WatchEvents streams: one bus subscription per subject however
 * many streams follow it, each payload read, validated (instances of different versions share
 * the bus) and converted to its proto form once for all of them. Frames that are not admin
 * events are skipped unread, and messages sent again after a NATS outage (`republished`) too;
 * a payload that cannot be read is reported and its subject's listeners told of the loss.
 * Listeners run synchronously inside the bus delivery, so they must only queue.
 */
export function createEventHub(deps: {
  bus: EventBus;
  onError: (error: unknown, context: string) => void;
}) {
  const { bus, onError } = deps;
  const topics = new Map<string, { listeners: Set<EventListener>; unsubscribe: () => void }>();
  const decoder = new TextDecoder();

  /** The payload's admin event; null when it cannot be read. */
  function read(payload: Uint8Array): ChatEnvelope | typeof SKIPPED | null {
    let json: unknown;
    try {
      json = JSON.parse(decoder.decode(payload));
    } catch (error) {
      onError(error, "watch event");
      return null;
    }
    const type = typeof json === "object" && json !== null && "frame" in json &&
        typeof json.frame === "object" && json.frame !== null && "type" in json.frame
      ? json.frame.type
      : undefined;
    if (typeof type === "string" && !EVENT_FRAME_TYPES.has(type)) return SKIPPED;
    const parsed = chatEnvelopeSchema.safeParse(json);
    if (!parsed.success) {
      onError(parsed.error, "watch event");
      return null;
    }
    // sent before, when it was new; a stream that may have missed it meanwhile has been ended
    return parsed.data.republished ? SKIPPED : parsed.data;
  }

  return {
    /** Calls `listener` with every admin event published on `subject`; returns the leave. */
    subscribe(subject: string, listener: EventListener): () => void {
      let topic = topics.get(subject);
      if (!topic) {
        const listeners = new Set<EventListener>();
        const unsubscribe = bus.subscribe(subject, (payload) => {
          const envelope = read(payload);
          if (envelope === SKIPPED) return;
          const event = envelope && toChatEvent(envelope.frame);
          for (const each of [...listeners]) {
            try {
              if (envelope && event) each.event(envelope, event);
              else if (!envelope) each.lost();
            } catch (error) {
              onError(error, "watch listener");
            }
          }
        });
        topic = { listeners, unsubscribe };
        topics.set(subject, topic);
      }
      const joined = topic;
      joined.listeners.add(listener);
      return () => {
        if (!joined.listeners.delete(listener) || joined.listeners.size > 0) return;
        if (topics.get(subject) === joined) topics.delete(subject);
        joined.unsubscribe();
      };
    },

    /** Subjects followed now (for tests). */
    get size(): number {
      return topics.size;
    },
  };
}

export type EventHub = ReturnType<typeof createEventHub>;
