import { createAdminOperations } from "./admin_operations.ts";
import type { Audience, ChatEnvelope, ChatFrame, UserEvent } from "./events.ts";
import { createChatMedia } from "./media.ts";
import { createMembershipOperations } from "./membership_operations.ts";
import { createMessageOperations } from "./message_operations.ts";
import type { ByteRange, ChatStore, EventPublisher, MediaBody, MediaPort } from "./ports.ts";
import { createReadOperations } from "./read_operations.ts";
import type {
  ChatParties,
  MediaKind,
  MediaRecord,
  MediaType,
  Membership,
  StoredMessage,
} from "./types.ts";

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

/** Publishes one of a chat's events (sent now) to `audience`. */
export type PublishChat = (
  chat: ChatParties,
  audience: Audience,
  frame: ChatFrame,
  envelope?: Pick<ChatEnvelope, "up_to_marked">,
) => void;

/** Publishes `message_deleted` for a message of `chat` just tombstoned (see createChatService). */
export type PublishDeleted = (chat: ChatParties, deleted: StoredMessage) => void;

/**
 * The chat domain: every rule of the contract, shared by the WebSocket and admin planes, in
 * parts: memberships and sanctions (membership_operations.ts), messages
 * (message_operations.ts), reading (read_operations.ts), and what only the admin plane does
 * (admin_operations.ts); all spread in below, lent the ways to publish here.
 * Writes are persisted, then published; errors are ChatError.
 */
export function createChatService(deps: ChatServiceDeps) {
  const { store, events, now } = deps;
  const chatMedia = createChatMedia({ store, media: deps.media });

  function publishChat(
    chat: ChatParties,
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

  function publishDeleted(chat: ChatParties, deleted: StoredMessage) {
    publishChat(chat, { to: "all" }, {
      type: "message_deleted",
      chat_id: chat.id,
      message_id: deleted.id,
      seq: deleted.seq,
      deleted_by: deleted.deleted_by!,
      deleted_at: deleted.deleted_at!,
    });
  }

  return {
    ...createMembershipOperations({ store }),
    ...createReadOperations({ store, publishChat }),
    ...createMessageOperations({ ...deps, chatMedia, publishChat, publishDeleted }),

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

    ...createAdminOperations({
      store,
      publishUser,
      publishDeleted,
      published: () => events.published(),
    }),
  };
}

export type ChatService = ReturnType<typeof createChatService>;
