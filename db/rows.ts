import type { PendingQuery, Row, Sql } from "postgres";
import type {
  Ban,
  Chat,
  MediaType,
  ModerationAction,
  Side,
  StoredMessage,
  VendorMember,
  VendorRole,
} from "../chat/types.ts";

/** Row shapes as postgres.js returns them, and their mapping to domain types. */

export interface ChatRow {
  id: string;
  user_id: string;
  vendor_id: string;
  last_seq: number;
  created_at: Date;
  updated_at: Date;
}

export interface MessageRow {
  id: string;
  chat_id: string;
  seq: number;
  sender_id: string;
  sender_side: Side;
  receiver_id: string;
  media_type: MediaType;
  content: string | null;
  media_id: string | null;
  client_id: string | null;
  is_read: boolean;
  read_at: Date | null;
  edited_at: Date | null;
  deleted_at: Date | null;
  deleted_by: string | null;
  created_at: Date;
  updated_at: Date;
}

/**
 * The columns of a message row, for queries that must not select `*`: the row also holds the
 * search vector (migration 0002), which only the search query reads.
 */
export const MESSAGE_COLUMNS = [
  "id",
  "chat_id",
  "seq",
  "sender_id",
  "sender_side",
  "receiver_id",
  "media_type",
  "content",
  "media_id",
  "client_id",
  "is_read",
  "read_at",
  "edited_at",
  "deleted_at",
  "deleted_by",
  "created_at",
  "updated_at",
] as const satisfies ReadonlyArray<keyof MessageRow>;

/**
 * MESSAGE_COLUMNS as a query fragment, each prefixed with `alias.` when one is given. Written
 * out as text rather than through postgres.js's column helper, which runs a handful of
 * regular expressions over the query text before it at every use: measurable on the path of
 * every message. The names are constants of this file, never input.
 */
export function messageColumns(
  sql: Pick<Sql, "unsafe">,
  alias?: MessageAlias,
): PendingQuery<Row[]> {
  return sql.unsafe(messageColumnList(alias));
}

type MessageAlias = "m" | "u" | "f";

/** MESSAGE_COLUMNS as text, for statements whose text is a constant (see messageColumns). */
export function messageColumnList(alias?: MessageAlias): string {
  const prefix = alias === undefined ? "" : `${alias}.`;
  return MESSAGE_COLUMNS.map((column) => prefix + column).join(", ");
}

export interface MemberRow {
  vendor_id: string;
  user_id: string;
  role: VendorRole;
  created_at: Date;
}

export interface BanRow {
  user_id: string;
  moderator_id: string;
  reason: string;
  created_at: Date;
  expires_at: Date | null;
}

export interface ModerationRow {
  id: string;
  action: string;
  moderator_id: string;
  target_user_id: string | null;
  target_message_id: string | null;
  reason: string;
  created_at: Date;
}

export const iso = (time: Date): string => time.toISOString();
export const isoOrNull = (time: Date | null): string | null => time ? time.toISOString() : null;

/** Where clients fetch a message's media. */
export const mediaUrl = (mediaId: string): string => `/v1/media/${mediaId}`;

export function toChat(row: ChatRow): Chat {
  return {
    id: row.id,
    user_id: row.user_id,
    vendor_id: row.vendor_id,
    last_seq: row.last_seq,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

export function toStoredMessage(row: MessageRow): StoredMessage {
  return {
    id: row.id,
    chat_id: row.chat_id,
    seq: row.seq,
    sender_id: row.sender_id,
    sender_side: row.sender_side,
    receiver_id: row.receiver_id,
    media_type: row.media_type,
    content: row.content,
    media_id: row.media_id,
    media_url: row.media_id ? mediaUrl(row.media_id) : null,
    client_id: row.client_id,
    is_read: row.is_read,
    read_at: isoOrNull(row.read_at),
    edited_at: isoOrNull(row.edited_at),
    deleted: row.deleted_at !== null,
    deleted_at: isoOrNull(row.deleted_at),
    deleted_by: row.deleted_by,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

export function toMember(row: MemberRow): VendorMember {
  return { ...row, created_at: iso(row.created_at) };
}

export function toBan(row: BanRow): Ban {
  return { ...row, created_at: iso(row.created_at), expires_at: isoOrNull(row.expires_at) };
}

export function toModerationAction(row: ModerationRow): ModerationAction {
  return { ...row, created_at: iso(row.created_at) };
}
