import { aboutSeq } from "../chat/chat_sequencer.ts";
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
 * How long a chat's events wait behind a missing message: instances publish a chat's messages
 * independently, so seq 25 sent from one can reach NATS a moment before seq 24 from another. A
 * message still missing after this is taken as lost (its stream is ended by the resync that
 * follows a loss) and what waited goes out.
 */
export const WATCH_GAP_WAIT_MS = 1_000;

/**
 * The most chats whose newest seq a subject's ordering remembers, those heard of last (about 10
 * MB for an all-chats stream at the bound). A chat forgotten has its next events go out as they
 * come: its newest seq is what tells a message that overtook the one before it. Most chats are
 * quiet most of the time, and two sends at once after a pause are the usual race, so a chat is
 * not forgotten for being quiet, only for being among the least recent of too many.
 */
export const MAX_ORDERED_CHATS = 50_000;

/**
 * The seq an event must not go out before: a message goes after the one before it, and an event
 * about a message (read, deleted, edited) after that message.
 */
function neededSeq(envelope: ChatEnvelope): number {
  const { frame } = envelope;
  return frame.type === "chat_message" ? frame.message.seq - 1 : aboutSeq(envelope) ?? 0;
}

interface Pending {
  envelope: ChatEnvelope;
  event: ProtoChatEvent;
  needs: number;
}

/** One chat's place in a subject's stream of events. */
interface ChatOrder {
  /** The newest seq that went out; undefined before the first message heard. */
  last: number | undefined;
  /** Events waiting for a message that has not come yet, in the order they came. */
  held: Pending[];
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Puts each chat's events of one subject in seq order before `deliver`: a message never goes out
 * before the one that came before it in its chat, nor an event about a message before that
 * message, unless what it waits for is still missing after WATCH_GAP_WAIT_MS.
 */
function createChatOrdering(deliver: (envelope: ChatEnvelope, event: ProtoChatEvent) => void) {
  const chats = new Map<string, ChatOrder>();

  function send(order: ChatOrder, pending: Pending) {
    if (pending.envelope.frame.type === "chat_message") {
      order.last = Math.max(order.last ?? 0, pending.envelope.frame.message.seq);
    }
    deliver(pending.envelope, pending.event);
  }

  /** Sends what waited and may go now, repeatedly, in the order it came. */
  function release(order: ChatOrder) {
    let index = order.held.findIndex((pending) => pending.needs <= (order.last ?? 0));
    while (index >= 0) {
      const [pending] = order.held.splice(index, 1);
      send(order, pending!);
      index = order.held.findIndex((each) => each.needs <= (order.last ?? 0));
    }
  }

  function forget() {
    // least recently heard of first, those holding nothing (one holding is let go within
    // WATCH_GAP_WAIT_MS)
    for (const [chatId, order] of chats) {
      if (chats.size <= MAX_ORDERED_CHATS) break;
      if (order.held.length === 0) chats.delete(chatId);
    }
  }

  return {
    push(chatId: string, envelope: ChatEnvelope, event: ProtoChatEvent) {
      let order = chats.get(chatId);
      if (order) chats.delete(chatId);
      order ??= { last: undefined, held: [], timer: undefined };
      chats.set(chatId, order);
      forget();
      const pending = { envelope, event, needs: neededSeq(envelope) };
      if (order.held.length === 0 && (order.last === undefined || pending.needs <= order.last)) {
        send(order, pending);
        return;
      }
      order.held.push(pending);
      const lastBefore = order.last;
      release(order);
      // a message that came filled the gap waited for: what still waits is behind another,
      // which has its own WATCH_GAP_WAIT_MS (only a message moves `last`: other events that go
      // out meanwhile do not put the wait off)
      if (order.held.length === 0 || order.last !== lastBefore) {
        clearTimeout(order.timer);
        order.timer = undefined;
      }
      if (order.held.length > 0 && order.timer === undefined) {
        const waiting = order;
        waiting.timer = setTimeout(() => {
          waiting.timer = undefined;
          // the message waited for is lost: what waited goes, in seq order
          waiting.held.sort((a, b) => a.needs - b.needs);
          for (const each of waiting.held.splice(0)) send(waiting, each);
        }, WATCH_GAP_WAIT_MS);
      }
    },

    /** Stops the timers (the subject is no longer followed). */
    close() {
      for (const order of chats.values()) clearTimeout(order.timer);
      chats.clear();
    },
  };
}

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
        const ordering = createChatOrdering((envelope, event) => {
          for (const each of [...listeners]) {
            try {
              each.event(envelope, event);
            } catch (error) {
              onError(error, "watch listener");
            }
          }
        });
        const unsubscribeBus = bus.subscribe(subject, (payload) => {
          const envelope = read(payload);
          if (envelope === SKIPPED) return;
          const event = envelope && toChatEvent(envelope.frame);
          if (envelope && event) return ordering.push(envelope.frame.chat_id, envelope, event);
          if (envelope) return;
          for (const each of [...listeners]) {
            try {
              each.lost();
            } catch (error) {
              onError(error, "watch listener");
            }
          }
        });
        const unsubscribe = () => {
          unsubscribeBus();
          ordering.close();
        };
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
