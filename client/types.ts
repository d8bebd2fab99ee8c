import type { Action, ActionFrame } from "../protocol/mod.ts";
import type { ReceivedFrameOf, ReceivedFrameType, ReceivedMessage } from "./received_frames.ts";

/** Server frames by name, as the client takes them (received_frames.ts). */
export type LatestChatFrame = ReceivedFrameOf<"latest_chat">;
export type ChatsFrame = ReceivedFrameOf<"chats">;
export type UnreadMessagesFrame = ReceivedFrameOf<"unread_messages">;
export type ErrorFrame = ReceivedFrameOf<"error">;

/** A frame for `request()`: the action's fields as the server's schema takes them. */
export type ActionInput<A extends Action> = Omit<ActionFrame<A>, "request_id">;

/** What the promise of each action resolves with. */
export type ActionResults = {
  [A in Action]: A extends "send_message" | "edit_message" ? ReceivedMessage
    : A extends "load_latest_chat" ? LatestChatFrame
    : A extends "list_chats" ? ChatsFrame
    : A extends "unread_message" ? UnreadMessagesFrame
    : void;
};

/**
 * `connecting`: the first connection is being made; `open`: connected and the first frames
 * arrived; `reconnecting`: waiting `retryInMs` before the next attempt, or making it;
 * `closed`: stopped for good (`code` says why).
 */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

export interface ConnectionStatus {
  state: ConnectionState;
  /**
   * Failed attempts since the last connection that opened and lasted (5 s, STEADY_MS: one
   * lost sooner counts on from the attempts before it); after a connection closed with
   * 4429 or 1013, counted on from the connections closed with 4429 or 1013 in a row before it
   * (the backoff keeps growing while the server refuses or cannot keep up); after one left
   * because no reply came within `timeoutMs`, from those left so since a reply last came in time
   * (a server alive but slower than that is not reconnected to at once, again and again).
   */
  attempt: number;
  /** The close code that ended the last connection. */
  code?: number;
  reason?: string;
  /** When reconnecting: the delay before the next attempt. */
  retryInMs?: number;
}

/** Server frames passed on to the application as they are. */
type Forwarded = Exclude<ReceivedFrameType, "ack" | "error" | "latest_chat" | "chats">;

/**
 * The events of a client. `chat_message` comes once per message and in `seq` order within a
 * chat, including messages fetched after a reconnect or a gap. A `message_deleted`,
 * `message_edited` or `message_read` of a message not yet given comes after it, and the message
 * already has the change (a deleted one never shows its content; a read one is `is_read`); a
 * `messages_read` that reaches messages not yet given comes after them, which are read from the
 * store after it. An edit or a deletion of a message given before, made while the client was
 * away, comes as a `message_edited` with the message as a reconnect's first page or a `chats`
 * row shows it (deleted: who deleted it, that copy does not say). `latest_chat` is the first page at the first connection only (later ones feed
 * `chat_message`); `chats` comes at every connection to `/v1/ws/chats/` and when the server
 * sends the list again unasked (the user's chats changed); the pages `list_chats` asks for are
 * its results, not events. `error` is an error frame no request waits for; `invalid_frame` a
 * frame that does not match the contract (it is dropped); `gap` messages the client gave up
 * reading (see MessageGap).
 */
export type ChatClientEvents =
  & { [T in Forwarded]: ReceivedFrameOf<T> }
  & {
    latest_chat: LatestChatFrame;
    chats: ChatsFrame;
    error: ErrorFrame;
    invalid_frame: { text: string; problem: string };
    gap: MessageGap;
    status: ConnectionStatus;
  };

export type ChatClientEvent = keyof ChatClientEvents;

/**
 * Messages of a chat the client will not give: `from_seq` to `to_seq` (inclusive) could not be
 * read, and the messages after them it had were given anyway, this event just before them.
 * With none after them (the read was for a chat a `chats` row showed newer messages of, or for
 * the message a deletion, edit or read mark names), it comes on its own, `to_seq` the newest
 * message the client knew was stored, and the amendments that waited for the range follow it;
 * messages after `to_seq` missed too show as a later gap once a message after them comes.
 * `error` says why: the server refused the read for good (a RequestError whose code is not
 * retryable, or one this client does not know; `forbidden`: no longer in the chat) or
 * acknowledged it without its page; undefined when the store no longer has them
 * (history removed). The application may show a marker there, or ask for them itself.
 */
export interface MessageGap {
  chat_id: string;
  from_seq: number;
  to_seq: number;
  error: unknown;
}

/** What the client has done to keep the application's view whole. */
export interface ClientStats {
  /** Connections that opened after the first. */
  reconnects: number;
  /** Messages dropped because the application already had them. */
  duplicates: number;
  /**
   * Gaps in `seq` filled from the store with `after_seq`: every missing message read. A gap
   * given up on (refused for good, or no longer in the store) is not counted here.
   */
  gapsFilled: number;
  /** Ranges of messages given up on: one per `gap` event (see MessageGap). */
  gapsSkipped: number;
  /** Sends written again after a lost connection (same `client_id`). */
  resent: number;
}
