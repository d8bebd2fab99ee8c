import { createDelivery, type Delivery } from "./delivery.ts";
import type { ChatEnvelope } from "./events.ts";
import type { EventBus, SerialisedEvent, Subjects } from "./ports.ts";

/** How far back republishRecent() looks: longer than a NATS reconnect takes. */
const RECENT_MS = 120_000;
const MAX_RECENT = 50_000;

/**
 * Publishes chat events, each serialised once for the bus and for this instance's sockets, and
 * remembers each chat's newest message, to send it again after the bus was away.
 */
export function createChatPublisher(deps: { bus: EventBus; subjects: Subjects }) {
  const { bus, subjects } = deps;
  const encoder = new TextEncoder();
  /** Each chat's newest message as this instance published it, oldest first. */
  const recent = new Map<string, { payload: Uint8Array; at: number }>();
  const republishedMark = encoder.encode(`{"republished":true,`);
  /** The event this instance is publishing right now: the bus may hand it back synchronously. */
  let publishing: { payload: Uint8Array; delivery: Delivery } | undefined;

  function rememberNewest(chatId: string, payload: Uint8Array) {
    recent.delete(chatId);
    recent.set(chatId, { payload, at: Date.now() });
    // oldest first: drop what is past the window, and never keep more than a bound
    for (const [oldest, entry] of recent) {
      if (recent.size <= MAX_RECENT && entry.at >= Date.now() - RECENT_MS) break;
      recent.delete(oldest);
    }
  }

  /** `payload` (`{"chat":…}`) with `"republished":true` first. */
  function markedRepublished(payload: Uint8Array): Uint8Array {
    const marked = new Uint8Array(republishedMark.length + payload.length - 1);
    marked.set(republishedMark);
    marked.set(payload.subarray(1), republishedMark.length);
    return marked;
  }

  return {
    /** Publishes `envelope` on the chat's subject; its frame is serialised once, or not at all. */
    publish(chatId: string, envelope: ChatEnvelope, serialised: SerialisedEvent = {}): void {
      const text = serialised.frame ?? JSON.stringify(envelope.frame);
      const unread = envelope.unread === undefined
        ? ""
        : `"unread":${JSON.stringify(envelope.unread)},`;
      const upToMarked = envelope.up_to_marked ? `"up_to_marked":true,` : "";
      const payload = encoder.encode(
        `{"chat":${JSON.stringify(envelope.chat)},"audience":${
          JSON.stringify(envelope.audience)
        },"sent_at":${envelope.sent_at},${unread}${upToMarked}"frame":${text}}`,
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
     * The delivery of `payload` when the bus hands back, synchronously, the event this instance
     * is publishing: it need not be read back.
     */
    beingPublished(payload: Uint8Array): Delivery | undefined {
      return publishing?.payload === payload ? publishing.delivery : undefined;
    },

    /**
     * After this instance's bus came back: what it published while away never reached the
     * others (the NATS client drops its buffer when it redials). Sending each recently active
     * chat's newest message again lets every other instance see the gap and read the missing
     * messages from the store; where nothing is missing it is a duplicate, and dropped. Marked
     * `republished`, so that what is no gap check (WatchEvents) can tell it is not new.
     */
    republishRecent(): void {
      const since = Date.now() - RECENT_MS;
      for (const [chatId, { payload, at }] of recent) {
        if (at < since) recent.delete(chatId);
        else bus.publish(subjects.chat(chatId), markedRepublished(payload));
      }
    },
  };
}
