import { createChatsCatchUp } from "./chats_catch_up.ts";
import type { MessageOrder } from "./message_order.ts";
import { type ReceivedFrame, receivedFrameSchema } from "./received_frames.ts";
import type { Requests } from "./requests.ts";
import type { ChatClientEvent, ChatClientEvents, ChatsFrame, LatestChatFrame } from "./types.ts";

/** Gives an event to the application's listeners. */
export type Emit = <E extends ChatClientEvent>(event: E, value: ChatClientEvents[E]) => void;

/**
 * Where each frame the server sends goes: an `ack` or `error` to the request it answers, a
 * page to the request waiting for it or else to the application, messages and their
 * deletions, edits and read marks through the message order, the rest straight to the
 * application.
 * Every frame is checked against the contract's schemas first (open to the error codes and
 * media types a later server may add, see received_frames.ts); one that does not fit is an
 * `invalid_frame` event and goes nowhere else.
 */
export function createFrameRouter(deps: {
  requests: Requests;
  order: MessageOrder;
  emit: Emit;
}) {
  const { requests, order, emit } = deps;

  function learnChats(frame: ChatsFrame, fillNewer: boolean): void {
    catchUp.sawChats(frame);
    for (const summary of frame.chats) {
      if (summary.last_message) order.rowShows(summary.chat_id, summary.last_message);
      order.newest(summary.chat_id, summary.last_message?.seq ?? 0, fillNewer);
    }
  }

  const catchUp = createChatsCatchUp({
    list: (before) =>
      requests.add({ action: "list_chats", before }, { leavesSilent: true }) as Promise<
        ChatsFrame
      >,
    learn: (page) => learnChats(page, true),
    retryAfter: (attempt) => order.retryAfter(attempt),
  });

  /**
   * A page no request took. A `chats` list is the server's news (the user's chats changed),
   * learned as a connection's first page is: a chat known with a newer message reads what it
   * missed (a vendor membership revoked and given back: the messages stored meanwhile came on
   * no socket). After the first, a `latest_chat` only ever answers a request, and one whose
   * request gave up is dropped (the event is the first page only).
   */
  function unasked(frame: LatestChatFrame | ChatsFrame): void {
    if (frame.type !== "chats") return;
    learnChats(frame, true);
    emit("chats", frame);
  }

  return {
    /** The frame a text holds, when it fits the contract; otherwise an `invalid_frame` event. */
    parse(text: string): ReceivedFrame | undefined {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        emit("invalid_frame", { text, problem: "not JSON" });
        return undefined;
      }
      const parsed = receivedFrameSchema.safeParse(value);
      if (!parsed.success) {
        const problem = parsed.error.issues
          .map((issue) => `${issue.path.join(".") || "frame"}: ${issue.message}`)
          .join("; ");
        emit("invalid_frame", { text, problem });
        return undefined;
      }
      return parsed.data;
    },

    /** The first frame of a connection, which says where things stand. */
    opened(frame: LatestChatFrame | ChatsFrame): void {
      if (frame.type === "chats") {
        // a chat known before and not on this page may have news further down the list
        catchUp.opened(frame);
        learnChats(frame, true);
        emit("chats", frame);
      } else if (!order.knows(frame.chat_id)) {
        order.startAfter(frame.chat_id, frame.messages.at(-1)?.seq ?? 0);
        emit("latest_chat", frame);
      } else {
        // a reconnect: what is new in the page, and what came before it when it does not
        // reach back far enough (the page then waits behind a gap)
        order.take(frame.chat_id, frame.messages);
      }
    },

    /** Any later frame of a connection. */
    route(frame: ReceivedFrame): void {
      switch (frame.type) {
        case "ack":
          requests.ack(frame);
          return;
        case "error":
          if (!requests.error(frame)) emit("error", frame);
          return;
        case "chats":
          // held for the next ack, learned now as an answer is (a chat not seen starts there);
          // should it turn out nobody's, it is news (unclaimed)
          if (requests.page(frame)) learnChats(frame, false);
          else unasked(frame);
          return;
        case "latest_chat":
          if (!requests.page(frame)) unasked(frame);
          return;
        case "unread_messages":
          requests.unread(frame);
          emit("unread_messages", frame);
          return;
        case "chat_message":
          catchUp.sawMessage(frame.chat_id, frame.message.created_at);
          order.take(frame.chat_id, [frame.message]);
          return;
        case "message_read":
        case "messages_read":
        case "message_deleted":
        case "message_edited":
          order.amend(frame);
          return;
        case "typing":
          emit("typing", frame);
          return;
      }
    },

    /** A page held for an `ack` that turned out to answer no request (see requests.ts). */
    unclaimed: unasked,
  };
}

export type FrameRouter = ReturnType<typeof createFrameRouter>;
