import type { LatestChatFrame, Message as ReceivedMessage } from "../../client/mod.ts";
import type { Message } from "../../protocol/mod.ts";
import type { StoredMessage } from "../../chat/types.ts";

const AT = "2026-01-01T00:00:00.000Z";

/** A stored text message of `chatId` from the vendor, `#seq` its content unless `extra` says. */
export function storedMessage(chatId: string, seq: number, extra: Partial<Message> = {}): Message {
  return {
    id: `${chatId}-${seq}`,
    chat_id: chatId,
    seq,
    sender_id: "vend-1",
    receiver_id: "cust-1",
    media_type: "text",
    content: `#${seq}`,
    media_url: null,
    is_read: false,
    read_at: null,
    edited_at: null,
    deleted: false,
    created_at: AT,
    updated_at: AT,
    client_id: null,
    ...extra,
  };
}

/** `storedMessage` as the store reads it: sent by the vendor's side unless `extra` says. */
export function storedRow(
  chatId: string,
  seq: number,
  extra: Partial<StoredMessage> = {},
): StoredMessage {
  const {
    sender_side = "vendor",
    media_id = null,
    deleted_at = null,
    deleted_by = null,
    ...message
  } = extra;
  return { ...storedMessage(chatId, seq, message), sender_side, media_id, deleted_at, deleted_by };
}

/** A row of a `chats` frame whose newest message is `seq`. */
export function chatRow(chatId: string, seq: number) {
  return {
    chat_id: chatId,
    user_id: "cust-1",
    vendor_id: "vend-1",
    last_message: seq === 0 ? null : storedMessage(chatId, seq),
    unread_count: 0,
    updated_at: AT,
  };
}

/** A `latest_chat` page of `chatId`, oldest first: stored messages given as they are or by seq. */
export function historyPage(
  chatId: string,
  messages: Array<number | ReceivedMessage>,
  hasMore = false,
): LatestChatFrame {
  return {
    type: "latest_chat",
    chat_id: chatId,
    messages: messages.map((item) => typeof item === "number" ? storedMessage(chatId, item) : item),
    has_more: hasMore,
  };
}

/** The `message_deleted` frame of message `seq` of `chatId`, deleted by the vendor at 00:00:05. */
export function messageDeleted(chatId: string, seq: number) {
  return {
    type: "message_deleted" as const,
    chat_id: chatId,
    message_id: `${chatId}-${seq}`,
    seq,
    deleted_by: "vend-1",
    deleted_at: "2026-01-01T00:00:05.000Z",
  };
}
