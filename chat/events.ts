import { z } from "zod";
import { chatSchema, messageSchema, sideSchema, UNREAD_PREVIEW_LIMIT } from "./types.ts";

const isoTime = z.iso.datetime({ offset: true });

/**
 * Events of one chat, in their wire form: each is sent to sockets exactly as it is here,
 * serialised once per instance. (The unread push is not among them: see `unread` below.)
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
]);
export type ChatFrame = z.infer<typeof chatFrameSchema>;

/** Which sockets of a chat's participants an event is for. */
export const audienceSchema = z.discriminatedUnion("to", [
  z.object({ to: z.literal("all") }),
  z.object({ to: z.literal("side"), side: sideSchema }),
  z.object({
    to: z.literal("others"),
    user_id: z.string(),
    /**
     * The socket (connection id) whose frame this is: the user's other sockets hear of a typing
     * from it (see Connection.deliver). Absent from instances that predate it.
     */
    socket: z.string().optional(),
  }),
]);
export type Audience = z.infer<typeof audienceSchema>;

/**
 * The receiver side's unread messages right after a new message: what the contract's
 * `unread_messages` push carries, with the messages named by seq. Every instance following
 * the chat has seen them as `chat_message` events (or reads them from the store), so the
 * push, tens of KiB with each message, never travels on the bus.
 */
export const unreadSummarySchema = z.object({
  side: sideSchema,
  count: z.number().int().nonnegative(),
  /** Oldest first, at most the preview's limit. */
  seqs: z.array(z.number().int().positive()).max(UNREAD_PREVIEW_LIMIT),
});
export type UnreadSummary = z.infer<typeof unreadSummarySchema>;

/** What travels on a chat's bus subject. */
export const chatEnvelopeSchema = z.object({
  chat: z.object({ user_id: z.string(), vendor_id: z.string() }),
  audience: audienceSchema,
  frame: chatFrameSchema,
  /** On a `chat_message`: the push owed to the receiver's side once it is delivered. */
  unread: unreadSummarySchema.optional(),
  /**
   * On a `messages_read`: its `up_to_seq` is the newest message it marked, which it must not
   * reach a socket before (ChatSequencer). Absent from instances that predate it, whose
   * `up_to_seq` is the seq asked, maybe far past the last message: theirs go out at once.
   */
  up_to_marked: z.literal(true).optional(),
  /** Publisher's clock (ms since epoch), for the fan-out latency figure. */
  sent_at: z.number(),
  /**
   * Sent again after its publisher's bus came back (ChatPublisher.republishRecent), so that the
   * others see a gap: not a new event.
   */
  republished: z.literal(true).optional(),
});
export type ChatEnvelope = z.infer<typeof chatEnvelopeSchema>;

/** What travels on a user's bus subject: things that change which chats a socket may see. */
export const userEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("chat_created"), chat: chatSchema }),
  z.object({
    type: z.literal("disconnect"),
    user_id: z.string(),
    reason: z.enum(["banned", "operator"]),
    /**
     * On an operator's: when the store recorded it (its clock), so that a socket the store let
     * in after it is not ended by it. Absent from instances that predate it: theirs end every
     * socket of the user.
     */
    disconnected_on: isoTime.optional(),
  }),
  z.object({ type: z.literal("membership_added"), vendor_id: z.string(), user_id: z.string() }),
  z.object({ type: z.literal("membership_revoked"), vendor_id: z.string(), user_id: z.string() }),
]);
export type UserEvent = z.infer<typeof userEventSchema>;

/**
 * What travels on the resync subject after an instance's bus came back (ChatFeed.requestResync):
 * how long events may have been lost, counting the time the loss took to be noticed, and which
 * instance asks (absent from instances that predate it).
 */
export const resyncRequestSchema = z.object({
  within_ms: z.number().int().positive(),
  from: z.string().max(64).optional(),
});

const decoder = new TextDecoder();

/**
 * A bus payload read as `schema`: validated on receipt, since instances of different versions
 * share the bus. Undefined when it is not that: each failure is told to `report` (a payload
 * that is not JSON is told twice, as not JSON and as failing the schema).
 */
export function readBusPayload<T>(
  payload: Uint8Array,
  schema: z.ZodType<T>,
  report: (error: unknown) => void,
): T | undefined {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(payload));
  } catch (error) {
    report(error);
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  report(parsed.error);
  return undefined;
}
