import { ChatError } from "../chat/errors.ts";
import type { ChatAsker } from "../chat/ports.ts";
import type { Actor, ChatService } from "../chat/service.ts";
import type { Message, ServerFrame, ServerFrameOf } from "../protocol/mod.ts";
import type { SocketMetrics } from "../observability/metrics.ts";
import type { Endpoint } from "./endpoint.ts";
import { type ErrorFrame, toErrorFrame } from "./errors.ts";
import type { ClientFrame } from "./frames.ts";
import type { RequestLimiter } from "./request_limits.ts";

/** What base64 media in a frame needs of the media routes' limits: a place of an upload. */
export type UploadPlaces = Pick<RequestLimiter, "occupy">;

/** What an action answers its `ack` with: the message, for `send_message` and `edit_message`. */
export type Outcome = { reply?: Message } | undefined;

/** What an action needs of its socket. */
export interface ActionContext {
  service: ChatService;
  /** The user's places of open uploads on this instance, shared with `POST /v1/media`. */
  mediaRequests: UploadPlaces;
  userId: string;
  endpoint: Endpoint;
  /** The user acting in a chat of this socket (`chat_id` on `/v1/ws/chats/`). */
  actorIn: (chatId: string | undefined) => Promise<Actor>;
  /**
   * The user asking to read, or change their message in, a chat of this socket, as actorIn names
   * it (SocketChats.askerIn).
   */
  askerIn: (chatId: string | undefined) => ChatAsker;
  /** A frame to this socket only. */
  send: (frame: ServerFrame) => void;
  /**
   * An `unread_messages` read with the chat at `lastSeq` is sent: the pushes of the messages it
   * counted, still on their way, are dropped (DeliveryOrder.unreadSent).
   */
  unreadSent: (chatId: string, lastSeq: number) => void;
  /** Tells the other participants whether the user is typing, as this socket last said. */
  sayTyping: (actor: Actor, isTyping: boolean) => void;
  /**
   * Holds the socket's live events until the action's `ack` or error frame is sent (an answer
   * read): a client takes a page or count sent before the ack as its answer, and is given it at
   * the ack (client/requests.ts), so an event sent between the two reaches it first.
   */
  holdLiveEvents: () => void;
}

/** What answering an action needs besides: where it reports. */
export interface AnswerContext extends ActionContext {
  /** Counts actions by outcome, and error codes; absent: nothing is measured. */
  instruments?: Pick<SocketMetrics, "actions" | "errors"> | undefined;
  /** Told of failures that are not the client's (the `internal` ones). */
  onError: (error: unknown, context: string) => void;
}

/**
 * Runs one client action and gives the frame that answers it: its `ack` (none for `ping`, nor
 * for a frame without `request_id`), or its error frame. Never rejects.
 */
export async function answerAction(
  frame: ClientFrame,
  context: AnswerContext,
): Promise<ServerFrameOf<"ack"> | ErrorFrame | undefined> {
  try {
    const outcome = await runAction(frame, context);
    context.instruments?.actions.inc({ action: frame.action, outcome: "ok" });
    if (frame.request_id === undefined || frame.action === "ping") return undefined;
    return {
      type: "ack",
      request_id: frame.request_id,
      action: frame.action,
      ...(outcome?.reply === undefined ? {} : { message: outcome.reply }),
    };
  } catch (error) {
    if (!(error instanceof ChatError) || error.code === "internal") {
      context.onError(error, `action ${frame.action}`);
    }
    const reply = toErrorFrame(error, { request_id: frame.request_id, action: frame.action });
    context.instruments?.actions.inc({ action: frame.action, outcome: reply.code });
    context.instruments?.errors.inc({ code: reply.code });
    return reply;
  }
}

/**
 * Sends what `read` reads from the store with the socket's live events held meanwhile and until
 * the action's ack, as a pushed chat list is (SocketChats.sendOwedChatList): a client shows a
 * chat's row, its unread count and a message as the last frame said, and an event sent during
 * the read (a message, a push, a deletion) would go ahead of an answer read before it, which
 * would undo it.
 */
async function sendWithEventsHeld(
  context: ActionContext,
  read: () => Promise<ServerFrame>,
): Promise<void> {
  context.holdLiveEvents();
  context.send(await read());
}

/**
 * One client action, as protocol.md's table says: the service does it, and frames for this
 * socket alone (`latest_chat`, `chats`, `unread_messages`) go out through `send`, with the live
 * events held while they are read (sendWithEventsHeld). Errors are ChatError, answered by the
 * caller.
 */
async function runAction(frame: ClientFrame, context: ActionContext): Promise<Outcome> {
  const { service, mediaRequests, userId, endpoint, actorIn, askerIn, sayTyping } = context;
  switch (frame.action) {
    case "ping":
      return;
    case "list_chats": {
      if (endpoint.kind !== "chats") {
        throw new ChatError("invalid_payload", "list_chats is for /v1/ws/chats/", {
          issues: [{ path: "action", message: "list_chats is for /v1/ws/chats/ only" }],
        });
      }
      await sendWithEventsHeld(context, async () => {
        const page = await service.listChatsAsked(userId, frame.before);
        return { type: "chats", chats: page.items, has_more: page.has_more };
      });
      return;
    }
    case "load_latest_chat": {
      await sendWithEventsHeld(context, async () => {
        const page = await service.loadLatestChat(askerIn(frame.chat_id), {
          limit: frame.limit,
          ...(frame.before_seq === undefined ? {} : { before_seq: frame.before_seq }),
          ...(frame.after_seq === undefined ? {} : { after_seq: frame.after_seq }),
        });
        return {
          type: "latest_chat",
          chat_id: page.chat_id,
          messages: page.items,
          has_more: page.has_more,
        };
      });
      return;
    }
    case "send_message": {
      const actor = await actorIn(frame.chat_id);
      const base64 = frame.image ?? frame.audio ?? frame.video;
      const clientId = frame.client_id ?? null;
      if (base64 !== undefined && clientId !== null) {
        // a retry of a stored message is answered before its file takes a place and is decoded
        const earlier = await service.sentBefore(actor, clientId);
        if (earlier) return { reply: earlier };
      }
      // decoding, sniffing and storing base64 holds as much as an upload, so it is counted as
      // one: else a user's sockets would each ingest a file at once, past the uploads' cap
      const place = base64 === undefined ? null : mediaRequests.occupy(userId, "upload");
      if (place && !place.admitted) {
        throw new ChatError("rate_limited", "too many media uploads at once");
      }
      try {
        const { message } = await service.sendMessage(actor, {
          receiver_id: frame.receiver_id,
          media_type: frame.media_type,
          content: frame.content ?? null,
          media: base64 !== undefined
            ? { base64 }
            : frame.media_id !== undefined
            ? { media_id: frame.media_id }
            : null,
          client_id: clientId,
        });
        return { reply: message };
      } finally {
        place?.release();
      }
    }
    case "read_message":
      await service.readMessage(await actorIn(frame.chat_id), frame.message_id);
      return;
    case "read_up_to":
      await service.readUpTo(await actorIn(frame.chat_id), frame.seq);
      return;
    case "delete_message":
      await service.deleteMessage(askerIn(frame.chat_id), frame.message_id);
      return;
    case "edit_message": {
      const message = await service.editMessage(
        askerIn(frame.chat_id),
        frame.message_id,
        frame.content,
      );
      return { reply: message };
    }
    case "unread_message": {
      await sendWithEventsHeld(context, async () => {
        const { unread, last_seq } = await service.unreadMessage(askerIn(frame.chat_id));
        context.unreadSent(unread.chat_id, last_seq);
        return { type: "unread_messages", ...unread };
      });
      return;
    }
    case "typing":
      sayTyping(await actorIn(frame.chat_id), frame.is_typing);
      return;
  }
}
