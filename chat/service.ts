import { createAdminOperations } from "./admin_operations.ts";
import { ChatError } from "./errors.ts";
import type { Audience, ChatEnvelope, ChatFrame, UserEvent } from "./events.ts";
import { createChatMedia } from "./media.ts";
import type {
  ByteRange,
  ChatStore,
  EventPublisher,
  HistoryQuery,
  MediaBody,
  MediaPort,
  ModerationRecord,
  Page,
  RecentWindow,
} from "./ports.ts";
import {
  type Chat,
  type ChatSummary,
  type MediaKind,
  type MediaRecord,
  type MediaType,
  type Membership,
  type Message,
  otherSide,
  type Sanction,
  type Side,
  type StoredMessage,
  toClientMessage,
  UNREAD_PREVIEW_LIMIT,
} from "./types.ts";

/** How many chats one `chats` frame carries. */
export const CHAT_LIST_LIMIT = 50;

/** Someone acting in a chat they are a participant of. */
export interface Actor {
  user_id: string;
  membership: Membership;
}

export type MediaInput = { base64: string } | { media_id: string };

export interface SendMessageInput {
  receiver_id: string;
  media_type: MediaType;
  /** Trimmed text for `text` messages. */
  content: string | null;
  media: MediaInput | null;
  client_id: string | null;
}

export interface ChatServiceDeps {
  store: ChatStore;
  events: EventPublisher;
  /** Media bytes: checked, stored once, streamed back. */
  media: MediaPort;
  /** Milliseconds since the epoch. */
  now: () => number;
  /** Failures the caller is not told of (the message they concern was stored). */
  onError?: (error: unknown, context: string) => void;
}

/**
 * The chat domain: every rule of the contract, shared by the WebSocket and admin planes
 * (what only the admin plane does is in admin_operations.ts, spread in below).
 * Writes are persisted, then published; errors are ChatError.
 */
export function createChatService(deps: ChatServiceDeps) {
  const { store, events, now } = deps;
  const chatMedia = createChatMedia({ store, media: deps.media });

  function publishChat(
    chat: Chat,
    audience: Audience,
    frame: ChatFrame,
    envelope: Pick<ChatEnvelope, "up_to_marked"> = {},
  ) {
    events.publishChat(chat.id, {
      chat: { user_id: chat.user_id, vendor_id: chat.vendor_id },
      audience,
      frame,
      sent_at: now(),
      ...envelope,
    });
  }

  function publishUser(userId: string, event: UserEvent) {
    events.publishUser(userId, event);
  }

  /** A stored message's client JSON, made once: the unread preview repeats the same ones. */
  const clientJson = new WeakMap<StoredMessage, string>();
  function jsonOf(stored: StoredMessage): string {
    let text = clientJson.get(stored);
    if (text === undefined) {
      text = JSON.stringify(toClientMessage(stored));
      clientJson.set(stored, text);
    }
    return text;
  }

  async function unreadFor(chat: Chat, side: Side) {
    const snapshot = await store.unread(chat.id, side, UNREAD_PREVIEW_LIMIT);
    return {
      chat_id: chat.id,
      count: snapshot.count,
      messages: snapshot.messages.map(toClientMessage),
    };
  }

  async function messageInChat(actor: Actor, messageId: string): Promise<StoredMessage> {
    const message = await store.getMessage(messageId);
    // someone else's message id reads as unknown
    if (!message || message.chat_id !== actor.membership.chat.id || message.deleted) {
      throw new ChatError("not_found", "no such message in this chat");
    }
    return message;
  }

  function ownMessage(actor: Actor, message: StoredMessage) {
    if (message.sender_id !== actor.user_id) {
      throw new ChatError("forbidden", "only the sender may change a message");
    }
  }

  async function receiverSideOk(chat: Chat, senderSide: Side, receiverId: string) {
    if (senderSide === "vendor") return receiverId === chat.user_id;
    if (receiverId === chat.vendor_id) return true;
    return receiverId !== chat.user_id && await store.isVendorMember(chat.vendor_id, receiverId);
  }

  async function refuseBanned(userId: string) {
    if (await store.activeBan(userId)) throw new ChatError("forbidden", "banned");
  }

  /**
   * Tombstones (with `audit`, audited in the same transaction), then publishes the change. The
   * message's chat (`chat` when the caller has it) is read before, not after: a read failing
   * once the deletion committed would answer `unavailable` for it, and the sender's retry
   * `not_found`, while no one was told.
   */
  async function tombstone(
    message: StoredMessage,
    deletedBy: string,
    options: { audit?: ModerationRecord; chat?: Chat } = {},
  ) {
    const { audit } = options;
    const chat = options.chat ?? await store.getChat(message.chat_id);
    const result = await store.deleteMessage(message.id, deletedBy, audit ? { audit } : {});
    if (!result) throw new ChatError("not_found", "no such message");
    if (result.changed && chat) {
      publishChat(chat, { to: "all" }, {
        type: "message_deleted",
        chat_id: chat.id,
        message_id: message.id,
        seq: message.seq,
        deleted_by: deletedBy,
        deleted_at: result.message.deleted_at!,
      });
    }
    return result.message;
  }

  return {
    /** The user's membership of a chat; `forbidden` when unknown, not a participant or banned. */
    async joinChat(userId: string, chatId: string): Promise<Membership> {
      const [membership] = await Promise.all([
        store.membership(chatId, userId),
        refuseBanned(userId),
      ]);
      if (!membership) throw new ChatError("forbidden", "not a participant of this chat");
      return membership;
    },

    /** Every chat of the user, and the vendors they act for; `forbidden` when banned. */
    async joinAllChats(userId: string): Promise<{ chats: Membership[]; vendors: string[] }> {
      const [chats, vendors] = await Promise.all([
        store.chatsOf(userId),
        store.vendorsOf(userId),
        refuseBanned(userId),
      ]);
      return { chats, vendors };
    },

    /**
     * Of `userIds`, the ones banned now or ever disconnected by an operator, in one query. A
     * disconnect's time is put on this clock as of when the query was sent: one made in the
     * query's own round trip before may look that much older, never younger, so that a socket
     * opened just after a disconnect is not taken for one it ends.
     */
    async sanctionsOf(userIds: readonly string[]): Promise<Map<string, Sanction>> {
      const askedAt = now();
      const sanctions = new Map<string, Sanction>();
      for (const [userId, { banned, disconnectedAgoMs }] of await store.sanctionsOf(userIds)) {
        const disconnectedAt = disconnectedAgoMs === null ? null : askedAt - disconnectedAgoMs;
        sanctions.set(userId, { banned, disconnectedAt });
      }
      return sanctions;
    },

    /** The users banned or disconnected by an operator within `window`. */
    sanctionedWithin(window: RecentWindow): Promise<string[]> {
      return store.sanctionedWithin(window);
    },

    /** The user's side in one chat they may see (used on `/v1/ws/chats/`). */
    async membership(userId: string, chatId: string): Promise<Membership> {
      const membership = await store.membership(chatId, userId);
      if (!membership) throw new ChatError("forbidden", "not a participant of this chat");
      return membership;
    },

    async history(chat: Chat, query: HistoryQuery): Promise<Page<Message>> {
      const page = await store.history(chat.id, query);
      return { items: page.items.map(toClientMessage), has_more: page.has_more };
    },

    unread(membership: Membership) {
      return unreadFor(membership.chat, membership.side);
    },

    async listChats(userId: string, before?: string): Promise<Page<ChatSummary>> {
      return await store.listChatsOf(
        userId,
        before === undefined ? { limit: CHAT_LIST_LIMIT } : { before, limit: CHAT_LIST_LIMIT },
      );
    },

    /**
     * Stores a message, then tells every participant and pushes the receiver side's unread.
     * A repeated `client_id` returns the first message and tells no one again.
     * Media is checked and stored first (see createChatMedia's forMessage).
     * Errors: invalid_payload (receiver not on the other side, broken base64), forbidden
     * (banned), not_found (media_id), payload_too_large, unsupported_media, unavailable.
     */
    async sendMessage(
      actor: Actor,
      input: SendMessageInput,
    ): Promise<{ message: Message; duplicate: boolean }> {
      const { chat, side } = actor.membership;
      if (!(await receiverSideOk(chat, side, input.receiver_id))) {
        throw new ChatError("invalid_payload", "receiver is not on the other side of this chat", {
          issues: [{ path: "receiver_id", message: "must be on the other side of this chat" }],
        });
      }
      const mediaId = await chatMedia.forMessage(actor, input.media_type, input.media);
      const { message: stored, duplicate, receiver_unread } = await store.insertMessage({
        chat_id: chat.id,
        sender_id: actor.user_id,
        sender_side: side,
        receiver_id: input.receiver_id,
        media_type: input.media_type,
        content: input.content,
        media_id: mediaId,
        client_id: input.client_id,
      });
      const message = toClientMessage(stored);
      if (duplicate) return { message, duplicate };
      const receiverSide = otherSide(side);
      // The message is stored: it is broadcast and acknowledged whatever comes of this read,
      // else a retry with its client_id would be a duplicate that no one was ever told of.
      // Without the snapshot, this message's unread push is skipped; the next one is whole.
      const unread = receiver_unread ??
        await store.unread(chat.id, receiverSide, UNREAD_PREVIEW_LIMIT).catch((error) => {
          deps.onError?.(error, "unread snapshot after a send");
          return undefined;
        });
      events.publishChat(chat.id, {
        chat: { user_id: chat.user_id, vendor_id: chat.vendor_id },
        audience: { to: "all" },
        frame: { type: "chat_message", chat_id: chat.id, message },
        sent_at: now(),
        ...(unread && {
          unread: {
            side: receiverSide,
            count: unread.count,
            seqs: unread.messages.map((unreadMessage) => unreadMessage.seq),
          },
        }),
      }, {
        frame: `{"type":"chat_message","chat_id":${JSON.stringify(chat.id)},"message":${
          jsonOf(stored)
        }}`,
        ...(unread && { unreadMessages: unread.messages.map(jsonOf) }),
      });
      return { message, duplicate };
    },

    /** Stores a file for a later `send_message` with `media_id` (`POST /v1/media`). */
    uploadMedia(actor: Actor, kind: MediaKind | null, body: MediaBody): Promise<MediaRecord> {
      return chatMedia.upload(actor, kind, body);
    },

    /** Media the user may fetch (`GET /v1/media/{id}`); `not_found` otherwise. */
    findMedia(userId: string, mediaId: string): Promise<MediaRecord> {
      return chatMedia.find(userId, mediaId);
    },

    /** The bytes of media from `findMedia`, all or a range, streamed. */
    openMedia(media: MediaRecord, range: ByteRange | null): Promise<ReadableStream<Uint8Array>> {
      return chatMedia.open(media, range);
    },

    /** Marks a message read. Errors: not_found, forbidden (the reader's own side sent it). */
    async readMessage(actor: Actor, messageId: string): Promise<void> {
      const { chat, side } = actor.membership;
      const result = await store.markRead(chat.id, messageId, side, actor.user_id);
      if (!result) throw new ChatError("not_found", "no such message in this chat");
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

    /** Tombstones the actor's own message. Errors: not_found, forbidden. */
    async deleteMessage(actor: Actor, messageId: string): Promise<void> {
      const message = await messageInChat(actor, messageId);
      ownMessage(actor, message);
      await tombstone(message, actor.user_id, { chat: actor.membership.chat });
    },

    /** Edits the actor's own text message. Errors: not_found, forbidden, failed_precondition. */
    async editMessage(actor: Actor, messageId: string, content: string): Promise<Message> {
      const message = await messageInChat(actor, messageId);
      ownMessage(actor, message);
      if (message.media_type !== "text") {
        throw new ChatError("failed_precondition", "only text messages can be edited", {
          issues: [{ path: "message_id", message: "only text messages can be edited" }],
        });
      }
      const edited = await store.editMessage(messageId, content);
      if (!edited) throw new ChatError("not_found", "no such message in this chat");
      const { chat } = actor.membership;
      const client = toClientMessage(edited);
      publishChat(chat, { to: "all" }, {
        type: "message_edited",
        chat_id: chat.id,
        message: client,
      });
      return client;
    },

    /** Tells the other participants' sockets; never stored. */
    typing(actor: Actor, isTyping: boolean): void {
      const { chat } = actor.membership;
      publishChat(chat, { to: "others", user_id: actor.user_id }, {
        type: "typing",
        chat_id: chat.id,
        user_id: actor.user_id,
        is_typing: isTyping,
      });
    },

    ...createAdminOperations({ store, publishUser, tombstone }),
  };
}

export type ChatService = ReturnType<typeof createChatService>;
