import { ChatError } from "./errors.ts";
import { refusal, refuseOutsider } from "./membership_operations.ts";
import type {
  AskedRead,
  ChatAsker,
  ChatListQuery,
  ChatStore,
  HistoryQuery,
  Page,
  StoredUnread,
} from "./ports.ts";
import type { Actor, PublishChat } from "./service.ts";
import {
  type Chat,
  type ChatSummary,
  type Membership,
  type Message,
  toClientMessage,
  UNREAD_PREVIEW_LIMIT,
} from "./types.ts";

/** How many chats one `chats` frame carries. */
export const CHAT_LIST_LIMIT = 50;

function chatListQuery(before: string | undefined): ChatListQuery {
  return before === undefined ? { limit: CHAT_LIST_LIMIT } : { before, limit: CHAT_LIST_LIMIT };
}

/**
 * An unread snapshot as the fields of its `unread_messages`, apart from the chat's last seq it
 * counted up to: the socket drops the pushes of the messages up to it (DeliveryOrder.unreadSent).
 */
function unreadAnswer(chatId: string, snapshot: StoredUnread) {
  const { count, messages, last_seq } = snapshot;
  return { unread: { chat_id: chatId, count, messages: messages.map(toClientMessage) }, last_seq };
}

/** What a read asked for gave; `forbidden` when the store refused it. */
function answerOf<T>(answer: AskedRead<T>): T {
  if ("refused" in answer) throw refusal(answer.refused);
  return answer.read;
}

/**
 * What a participant reads, and marks read: history pages, the chat list, the unread preview,
 * and `read_message` / `read_up_to`. Part of the chat service (see createChatService), which
 * lends it its way to publish a chat's events.
 */
export function createReadOperations(deps: { store: ChatStore; publishChat: PublishChat }) {
  const { store, publishChat } = deps;

  async function history(chat: Chat, query: HistoryQuery): Promise<Page<Message>> {
    const page = await store.history(chat.id, query);
    return { items: page.items.map(toClientMessage), has_more: page.has_more };
  }

  async function listChats(userId: string, before?: string): Promise<Page<ChatSummary>> {
    return await store.listChatsOf(userId, chatListQuery(before));
  }

  return {
    history,

    /** The unread of the membership's side (see unreadAnswer). */
    async unread(membership: Membership) {
      const { chat, side } = membership;
      return unreadAnswer(chat.id, await store.unread(chat.id, side, UNREAD_PREVIEW_LIMIT));
    },

    /**
     * A page of history the user asked for (`load_latest_chat`), under the chat's id as stored.
     * Errors: forbidden (banned, or not in the chat: the socket may not have heard of a removal
     * or a ban yet, so the store checks in the read's own statement).
     */
    async loadLatestChat(
      asker: ChatAsker,
      query: HistoryQuery,
    ): Promise<Page<Message> & { chat_id: string }> {
      const { chat_id, items, has_more } = answerOf(await store.historyAsked(asker, query));
      return { chat_id, items: items.map(toClientMessage), has_more };
    },

    /**
     * The user's unread, asked for (`unread_message`; see unreadAnswer). Errors: forbidden, as
     * loadLatestChat.
     */
    async unreadMessage(asker: ChatAsker) {
      const { chat_id, ...snapshot } = answerOf(
        await store.unreadAsked(asker, UNREAD_PREVIEW_LIMIT),
      );
      return unreadAnswer(chat_id, snapshot);
    },

    listChats,

    /**
     * A page of the user's chats they asked for (`list_chats`). Errors: forbidden (banned,
     * though the socket has not heard of it yet: the list carries each chat's last message).
     */
    async listChatsAsked(userId: string, before?: string): Promise<Page<ChatSummary>> {
      return answerOf(await store.listChatsAsked(userId, chatListQuery(before)));
    },

    /**
     * Marks a message read. Errors: not_found, forbidden (the reader's own side sent it, or the
     * reader is banned or no longer in the chat).
     */
    async readMessage(actor: Actor, messageId: string): Promise<void> {
      const { chat, side } = actor.membership;
      const result = await store.markRead(chat.id, messageId, side, actor.user_id);
      if (!result) {
        // the store marks nothing for a reader banned or gone from the chat, whose socket has
        // not heard of it yet: refused as such, not as an unknown message (asked here, on the
        // rare refusal: the writer's read batch does not say why, see db/read_batch.ts)
        await refuseOutsider(store, actor.user_id, chat.id);
        throw new ChatError("not_found", "no such message in this chat");
      }
      if (result.message.sender_side === side) {
        throw new ChatError("forbidden", "only the receiver's side may mark a message read");
      }
      if (!result.changed) return;
      publishChat(chat, { to: "all" }, {
        type: "message_read",
        chat_id: chat.id,
        // the stored id: the one given may differ in case (a uuid), and clients match on it
        message_id: result.message.id,
        seq: result.message.seq,
        reader_id: actor.user_id,
        read_at: result.message.read_at!,
      });
    },

    /**
     * Marks every message addressed to the reader's side up to `seq` read. `messages_read` says
     * up to the newest one it marked, not the `seq` asked (a client's "mark all read" may ask
     * far past the last): every message up to it was read, and the event follows that message
     * (ChatSequencer), whose own broadcast may come after: a send broadcasts once it has read
     * the unread snapshot, and the mark may come in between.
     */
    async readUpTo(actor: Actor, seq: number): Promise<{ count: number }> {
      const { chat, side } = actor.membership;
      const marked = await store.markReadUpTo(chat.id, side, seq, actor.user_id);
      const { count, up_to_seq, read_at } = marked;
      if (count > 0) {
        publishChat(chat, { to: "all" }, {
          type: "messages_read",
          chat_id: chat.id,
          reader_id: actor.user_id,
          up_to_seq,
          count,
          read_at,
        }, { up_to_marked: true });
      }
      return { count };
    },
  };
}
