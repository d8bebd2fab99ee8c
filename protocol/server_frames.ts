import { z } from "zod";
import { chatFrameSchema } from "../chat/events.ts";
import { messageSchema } from "../chat/types.ts";
import { actions } from "../ws/frames.ts";

/**
 * Frames from the server (protocol.md "Frames from the server"): the events of a chat as the
 * service publishes them (`chatFrameSchema`), the unread push, and the frames one socket gets
 * for itself.
 * Clients validate what they receive with these; the JSON Schema and AsyncAPI documents are
 * generated from them.
 */

const isoTime = z.iso.datetime({ offset: true });

/** Codes of the `error` frame. */
export const wireErrorCodeSchema = z.enum([
  "invalid_json",
  "invalid_frame",
  "unknown_action",
  "invalid_payload",
  "not_found",
  "forbidden",
  "payload_too_large",
  "unsupported_media",
  "rate_limited",
  "unavailable",
  "internal",
]);

/** A field-level problem of an `invalid_payload` error. */
export const issueSchema = z.object({ path: z.string(), message: z.string() });

/** One row of the `chats` frame. */
export const chatSummarySchema = z.object({
  chat_id: z.string(),
  user_id: z.string(),
  vendor_id: z.string(),
  last_message: messageSchema.nullable(),
  unread_count: z.number().int().nonnegative(),
  updated_at: isoTime,
});

/** A page of one chat's history: at connect, and the answer to `load_latest_chat`. */
export const latestChatFrameSchema = z.object({
  type: z.literal("latest_chat"),
  chat_id: z.string(),
  /** Oldest first. */
  messages: z.array(messageSchema),
  has_more: z.boolean(),
});

/** A page of the user's chats: at connect to `/v1/ws/chats/`, and the answer to `list_chats`. */
export const chatsFrameSchema = z.object({
  type: z.literal("chats"),
  /** Newest activity first. */
  chats: z.array(chatSummarySchema),
  has_more: z.boolean(),
});

/** The user's unread messages of a chat: asked for, and pushed after each new message. */
export const unreadMessagesFrameSchema = z.object({
  type: z.literal("unread_messages"),
  chat_id: z.string(),
  /** All unread for this user. */
  count: z.number().int().nonnegative(),
  /** The newest up to 50, oldest first. */
  messages: z.array(messageSchema),
});

/** The action with this `request_id` succeeded. */
export const ackFrameSchema = z.object({
  type: z.literal("ack"),
  request_id: z.string(),
  action: z.enum(actions),
  /** The stored message, for `send_message` and `edit_message`. */
  message: messageSchema.optional(),
});

/** An action (or a frame that is not one) failed; the socket stays open. */
export const errorFrameSchema = z.object({
  type: z.literal("error"),
  code: wireErrorCodeSchema,
  message: z.string(),
  request_id: z.string().optional(),
  action: z.string().optional(),
  issues: z.array(issueSchema).optional(),
});

/** Every frame a client can receive, discriminated on `type`. */
export const serverFrameSchema = z.discriminatedUnion("type", [
  latestChatFrameSchema,
  chatsFrameSchema,
  ...chatFrameSchema.options,
  unreadMessagesFrameSchema,
  ackFrameSchema,
  errorFrameSchema,
]);

export type ServerFrame = z.infer<typeof serverFrameSchema>;
export type ServerFrameType = ServerFrame["type"];
/** The frame of one `type`. */
export type ServerFrameOf<T extends ServerFrameType> = Extract<ServerFrame, { type: T }>;
export type WireErrorCode = z.infer<typeof wireErrorCodeSchema>;
export type ChatSummary = z.infer<typeof chatSummarySchema>;
