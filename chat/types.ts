import { z } from "zod";

/** The two sides of a chat: the customer, and the vendor with its members. */
export const sideSchema = z.enum(["customer", "vendor"]);
export type Side = z.infer<typeof sideSchema>;

/** The side across the chat: the receiver of a message `side` sends, the sender of what it reads. */
export const otherSide = (side: Side): Side => side === "customer" ? "vendor" : "customer";

export const mediaTypeSchema = z.enum(["text", "image", "audio", "video"]);
export type MediaType = z.infer<typeof mediaTypeSchema>;
/** The media types that carry a file. */
export type MediaKind = Exclude<MediaType, "text">;

/** How many messages the `unread_messages` push carries: the newest unread, by the contract. */
export const UNREAD_PREVIEW_LIMIT = 50;

/**
 * The longest user id any plane takes (a token's, a frame's receiver_id, an admin request's):
 * one bound for all, so that whoever can chat can also be banned, disconnected or given a chat.
 */
export const MAX_USER_ID_LENGTH = 256;

/**
 * A chat, message or media id as an edge accepts it: a UUID in either case (the store's uuid
 * type reads both; its canonical form is lower case). Anything else names nothing.
 */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const vendorRoleSchema = z.enum(["owner", "agent"]);
export type VendorRole = z.infer<typeof vendorRoleSchema>;

const isoTime = z.iso.datetime({ offset: true });

/** A message as clients see it (protocol.md "A message is"). */
export const messageSchema = z.object({
  id: z.string(),
  chat_id: z.string(),
  seq: z.number().int().positive(),
  sender_id: z.string(),
  receiver_id: z.string(),
  media_type: mediaTypeSchema,
  content: z.string().nullable(),
  media_url: z.string().nullable(),
  is_read: z.boolean(),
  read_at: isoTime.nullable(),
  edited_at: isoTime.nullable(),
  deleted: z.boolean(),
  created_at: isoTime,
  updated_at: isoTime,
  client_id: z.string().nullable(),
});
export type Message = z.infer<typeof messageSchema>;

/** A message as stored: the admin plane sees deleted content and who deleted it. */
export interface StoredMessage extends Message {
  sender_side: Side;
  media_id: string | null;
  deleted_at: string | null;
  deleted_by: string | null;
}

export const chatSchema = z.object({
  id: z.string(),
  user_id: z.string(),
  vendor_id: z.string(),
  created_at: isoTime,
  updated_at: isoTime,
  last_seq: z.number().int().nonnegative(),
});
export type Chat = z.infer<typeof chatSchema>;

/** A chat's id as the store spells it, and its two sides: what its events are published under. */
export type ChatParties = Pick<Chat, "id" | "user_id" | "vendor_id">;

/** One row of the `chats` frame. */
export interface ChatSummary {
  chat_id: string;
  user_id: string;
  vendor_id: string;
  last_message: Message | null;
  unread_count: number;
  updated_at: string;
}

export interface VendorMember {
  vendor_id: string;
  user_id: string;
  role: VendorRole;
  created_at: string;
}

export interface Ban {
  user_id: string;
  moderator_id: string;
  reason: string;
  created_at: string;
  expires_at: string | null;
}

/** What an operator did to a user that ends their open sockets, as the store reads it. */
export interface Sanction {
  /** A ban is in force. */
  banned: boolean;
  /**
   * When an operator last disconnected the user, on the database's clock (ISO, as the
   * disconnect's event carries it); null: never.
   */
  disconnectedOn: string | null;
}

export interface ModerationAction {
  id: string;
  action: string;
  moderator_id: string;
  target_user_id: string | null;
  target_message_id: string | null;
  reason: string;
  created_at: string;
}

/** A file sent in a chat: the bytes are stored once per SHA-256, this row once per sending. */
export interface MediaRecord {
  id: string;
  chat_id: string;
  uploader_id: string;
  media_type: MediaKind;
  /** SHA-256 of the bytes, lower-case hex: the key of the blob in the media store. */
  sha256: string;
  /** Detected from the magic bytes when it was stored. */
  mime_type: string;
  size: number;
  created_at: string;
}

/** A media row and how messages carry it, which decides who may fetch it. */
export interface MediaEntry extends MediaRecord {
  /** `live`: on a message not deleted; `deleted`: only on deleted ones; `unsent`: on none yet. */
  usage: "live" | "deleted" | "unsent";
}

/** What a connected user is to one chat. */
export interface Membership {
  chat: Chat;
  side: Side;
}

/** The side a user is on in a chat, or null when not a participant. */
export function sideOf(
  chat: Pick<Chat, "user_id" | "vendor_id">,
  userId: string,
  isVendorMember: boolean,
): Side | null {
  if (userId === chat.user_id) return "customer";
  if (userId === chat.vendor_id || isVendorMember) return "vendor";
  return null;
}

/** Deleted messages keep their row; clients never see their content again. */
export function toClientMessage(stored: StoredMessage): Message {
  const deleted = stored.deleted;
  return {
    id: stored.id,
    chat_id: stored.chat_id,
    seq: stored.seq,
    sender_id: stored.sender_id,
    receiver_id: stored.receiver_id,
    media_type: stored.media_type,
    content: deleted ? null : stored.content,
    media_url: deleted ? null : stored.media_url,
    is_read: stored.is_read,
    read_at: stored.read_at,
    edited_at: stored.edited_at,
    deleted,
    created_at: stored.created_at,
    updated_at: stored.updated_at,
    client_id: stored.client_id,
  };
}
