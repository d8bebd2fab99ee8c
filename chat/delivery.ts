import type { ChatEnvelope, ChatFrame } from "./events.ts";
import type { SerialisedEvent } from "./ports.ts";

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
  /**
   * The feed's round-trip tick (see bus_round_trips.ts), given as it first delivers an event made
   * on this instance (its own, or read from the store); 0 for one the bus brought, in order with
   * the bus's other events, which waits for no round trip.
   */
  roundTripTick?: number | undefined;
  /**
   * An edit, deletion or read mark replayed from the store: when it was made (the store's
   * clock). A listener that joined the chat after that read the chat from the store later (the
   * socket's first page, or the pages its client reads), and has it already.
   */
  amendedAt?: number | undefined;
  /**
   * An `unread_messages` push: the seq of the newest message it follows. A socket whose page
   * from the store had that message was sent a newer count with the page, and is not sent this.
   */
  readonly afterSeq?: number | undefined;
}

/** Wraps an envelope so that its frame is serialised at most once. */
export function createDelivery(envelope: ChatEnvelope, serialised: SerialisedEvent = {}): Delivery {
  let text = serialised.frame;
  return {
    envelope,
    get text() {
      return text ??= JSON.stringify(envelope.frame);
    },
    unreadMessages: serialised.unreadMessages,
    roundTripTick: undefined,
  };
}
