import type { ChatFrame } from "../chat/events.ts";
import type {
  Ban,
  Chat,
  MediaType,
  Message,
  ModerationAction,
  StoredMessage,
  VendorMember,
  VendorRole,
} from "../chat/types.ts";

/** Domain values in the admin proto's shapes (proto/chat/admin/v1/admin.proto). */

/** google.protobuf.Timestamp, with 64-bit seconds as a number. */
export interface Timestamp {
  seconds: number;
  nanos: number;
}

export interface ProtoChat {
  id: string;
  user_id: string;
  vendor_id: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  message_count: number;
}

export interface ProtoMessage {
  id: string;
  chat_id: string;
  seq: number;
  sender_id: string;
  receiver_id: string;
  media_type: string;
  content: string;
  media_url: string;
  is_read: boolean;
  read_at: Timestamp | null;
  edited_at: Timestamp | null;
  deleted: boolean;
  deleted_at: Timestamp | null;
  deleted_by: string;
  created_at: Timestamp;
}

export interface ProtoChatEvent {
  type: string;
  chat_id: string;
  message: ProtoMessage | null;
  message_id: string;
  user_id: string;
  at: Timestamp;
  seq: number;
  count: number;
}

export function toTimestamp(iso: string): Timestamp {
  const ms = Date.parse(iso);
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

const timestampOrNull = (iso: string | null) => iso === null ? null : toTimestamp(iso);

/** The milliseconds of a Timestamp (sub-millisecond digits are dropped). */
export function fromTimestamp(timestamp: Timestamp): number {
  return timestamp.seconds * 1000 + Math.floor(timestamp.nanos / 1_000_000);
}

const MEDIA_TYPES: Record<MediaType, string> = {
  text: "MEDIA_TYPE_TEXT",
  image: "MEDIA_TYPE_IMAGE",
  audio: "MEDIA_TYPE_AUDIO",
  video: "MEDIA_TYPE_VIDEO",
};

export const VENDOR_ROLES: Record<VendorRole, string> = {
  owner: "VENDOR_ROLE_OWNER",
  agent: "VENDOR_ROLE_AGENT",
};

/** The audit log's action names (chat/service.ts) as the proto enum. */
const MODERATION_ACTIONS: Record<string, string> = {
  delete_message: "MODERATION_ACTION_TYPE_DELETE_MESSAGE",
  ban_user: "MODERATION_ACTION_TYPE_BAN_USER",
  unban_user: "MODERATION_ACTION_TYPE_UNBAN_USER",
  disconnect_user: "MODERATION_ACTION_TYPE_DISCONNECT_USER",
};

export function toProtoChat(chat: Chat): ProtoChat {
  return {
    id: chat.id,
    user_id: chat.user_id,
    vendor_id: chat.vendor_id,
    created_at: toTimestamp(chat.created_at),
    updated_at: toTimestamp(chat.updated_at),
    // seq has no gaps, so the last one counts the chat's messages
    message_count: chat.last_seq,
  };
}

/** A stored message shows its deleted content; a client message (from an event) has none. */
export function toProtoMessage(message: StoredMessage | Message): ProtoMessage {
  const stored = "deleted_at" in message ? message : null;
  return {
    id: message.id,
    chat_id: message.chat_id,
    seq: message.seq,
    sender_id: message.sender_id,
    receiver_id: message.receiver_id,
    media_type: MEDIA_TYPES[message.media_type],
    content: message.content ?? "",
    media_url: message.media_url ?? "",
    is_read: message.is_read,
    read_at: timestampOrNull(message.read_at),
    edited_at: timestampOrNull(message.edited_at),
    deleted: message.deleted,
    deleted_at: timestampOrNull(stored?.deleted_at ?? null),
    deleted_by: stored?.deleted_by ?? "",
    created_at: toTimestamp(message.created_at),
  };
}

export function toProtoMember(member: VendorMember) {
  return {
    vendor_id: member.vendor_id,
    user_id: member.user_id,
    role: VENDOR_ROLES[member.role],
    created_at: toTimestamp(member.created_at),
  };
}

export function toProtoBan(ban: Ban) {
  return {
    user_id: ban.user_id,
    moderator_id: ban.moderator_id,
    reason: ban.reason,
    created_at: toTimestamp(ban.created_at),
    expires_at: timestampOrNull(ban.expires_at),
  };
}

export function toProtoModerationAction(action: ModerationAction) {
  return {
    id: action.id,
    action: MODERATION_ACTIONS[action.action] ?? "MODERATION_ACTION_TYPE_UNSPECIFIED",
    moderator_id: action.moderator_id,
    target_user_id: action.target_user_id ?? "",
    target_message_id: action.target_message_id ?? "",
    reason: action.reason,
    created_at: toTimestamp(action.created_at),
  };
}

/** A chat frame as a ChatEvent; null for frames that are not events of the admin plane. */
export function toChatEvent(frame: ChatFrame): ProtoChatEvent | null {
  switch (frame.type) {
    case "chat_message":
    case "message_edited": {
      const { message } = frame;
      return {
        type: frame.type === "chat_message"
          ? "CHAT_EVENT_TYPE_CHAT_MESSAGE"
          : "CHAT_EVENT_TYPE_MESSAGE_EDITED",
        chat_id: frame.chat_id,
        message: toProtoMessage(message),
        message_id: message.id,
        user_id: message.sender_id,
        at: toTimestamp(
          frame.type === "chat_message" ? message.created_at : message.edited_at ??
            message.updated_at,
        ),
        seq: message.seq,
        count: 0,
      };
    }
    case "message_read":
      return {
        type: "CHAT_EVENT_TYPE_MESSAGE_READ",
        chat_id: frame.chat_id,
        message: null,
        message_id: frame.message_id,
        user_id: frame.reader_id,
        at: toTimestamp(frame.read_at),
        seq: frame.seq,
        count: 0,
      };
    case "messages_read":
      return {
        type: "CHAT_EVENT_TYPE_MESSAGES_READ",
        chat_id: frame.chat_id,
        message: null,
        message_id: "",
        user_id: frame.reader_id,
        at: toTimestamp(frame.read_at),
        seq: frame.up_to_seq,
        count: frame.count,
      };
    case "message_deleted":
      return {
        type: "CHAT_EVENT_TYPE_MESSAGE_DELETED",
        chat_id: frame.chat_id,
        message: null,
        message_id: frame.message_id,
        user_id: frame.deleted_by,
        at: toTimestamp(frame.deleted_at),
        seq: frame.seq,
        count: 0,
      };
    case "typing":
      return null;
  }
}

/** Frame types toChatEvent turns into events: others need not even be validated. */
export const EVENT_FRAME_TYPES: ReadonlySet<string> = new Set([
  "chat_message",
  "message_read",
  "messages_read",
  "message_deleted",
  "message_edited",
]);
