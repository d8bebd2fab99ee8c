import { z } from "zod";
import { chatSchema, messageSchema, sideSchema } from "./types.ts";

const isoTime = z.iso.datetime({ offset: true });

/**
 * Events of one chat, in their wire form: each is sent to sockets exactly as it is here,
 * serialised once per instance.
 */
export const chatFrameSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("chat_message"), chat_id: z.string(), message: messageSchema }),
  z.object({
    type: z.literal("message_read"),
    chat_id: z.string(),
    message_id: z.string(),
    seq: z.number().int(),
    reader_id: z.string(),
    read_at: isoTime,
  }),
  z.object({
    type: z.literal("messages_read"),
    chat_id: z.string(),
    reader_id: z.string(),
    up_to_seq: z.number().int(),
    count: z.number().int(),
    read_at: isoTime,
  }),
  z.object({
    type: z.literal("message_deleted"),
    chat_id: z.string(),
    message_id: z.string(),
    seq: z.number().int(),
    deleted_by: z.string(),
    deleted_at: isoTime,
  }),
  z.object({ type: z.literal("message_edited"), chat_id: z.string(), message: messageSchema }),
  z.object({
    type: z.literal("typing"),
    chat_id: z.string(),
    user_id: z.string(),
    is_typing: z.boolean(),
  }),
  z.object({
    type: z.literal("unread_messages"),
    chat_id: z.string(),
    count: z.number().int().nonnegative(),
    messages: z.array(messageSchema),
  }),
]);
export type ChatFrame = z.infer<typeof chatFrameSchema>;

/** Which sockets of a chat's participants an event is for. */
export const audienceSchema = z.discriminatedUnion("to", [
  z.object({ to: z.literal("all") }),
  z.object({ to: z.literal("side"), side: sideSchema }),
  z.object({ to: z.literal("others"), user_id: z.string() }),
]);
export type Audience = z.infer<typeof audienceSchema>;

/** What travels on a chat's bus subject. */
export const chatEnvelopeSchema = z.object({
  chat: z.object({ user_id: z.string(), vendor_id: z.string() }),
  audience: audienceSchema,
  frame: chatFrameSchema,
  /** Publisher's clock (ms since epoch), for the fan-out latency figure. */
  sent_at: z.number(),
});
export type ChatEnvelope = z.infer<typeof chatEnvelopeSchema>;

/** What travels on a user's bus subject: things that change which chats a socket may see. */
export const userEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("chat_created"), chat: chatSchema }),
  z.object({
    type: z.literal("disconnect"),
    user_id: z.string(),
    reason: z.enum(["banned", "operator"]),
  }),
  z.object({ type: z.literal("membership_added"), vendor_id: z.string(), user_id: z.string() }),
  z.object({ type: z.literal("membership_revoked"), vendor_id: z.string(), user_id: z.string() }),
]);
export type UserEvent = z.infer<typeof userEventSchema>;
