import { z } from "zod";
import {
  ackFrameSchema,
  chatFrameSchema,
  chatsFrameSchema,
  chatSummarySchema,
  errorFrameSchema,
  latestChatFrameSchema,
  type MediaType,
  mediaTypeSchema,
  messageSchema,
  unreadMessagesFrameSchema,
  type WireErrorCode,
  wireErrorCodeSchema,
} from "../protocol/mod.ts";

/** One of `Known`, or a value a later server may add: editors still suggest the known ones. */
export type Open<Known extends string> = Known | (string & Record<never, never>);

/** Any string, typed so that the known values stay visible. */
function open<Known extends string>(known: z.ZodType<Known>): z.ZodType<Open<Known>> {
  return z.union([known, z.string()]);
}

/** The `code` of an `error` frame: one this client knows, or one a later server added. */
export type ErrorCode = Open<WireErrorCode>;

/**
 * A message as the client takes it: the contract's, except that its `media_type` may be one
 * a later server added (kept as sent).
 */
export const receivedMessageSchema = messageSchema.extend({
  media_type: open(mediaTypeSchema),
});
export type ReceivedMessage = z.infer<typeof receivedMessageSchema>;
export type ReceivedMediaType = Open<MediaType>;

// in the order chat/events.ts lists them; received_frames_test.ts fails when it changes
const [chatMessage, messageRead, messagesRead, messageDeleted, messageEdited, typing] =
  chatFrameSchema.options;

/**
 * Every frame a client takes, checked as strictly as the contract's schemas (`protocol/`)
 * except for the values a later server may add to an enumeration: an `error` frame's `code`
 * and a message's `media_type`. Keeping those lets a request refused with a new code settle
 * at once, and a message of a new media type come in order rather than hold its chat's later
 * messages behind a gap. A missing field or a wrong type is still refused.
 */
export const receivedFrameSchema = z.discriminatedUnion("type", [
  latestChatFrameSchema.extend({ messages: z.array(receivedMessageSchema) }),
  chatsFrameSchema.extend({
    chats: z.array(chatSummarySchema.extend({ last_message: receivedMessageSchema.nullable() })),
  }),
  chatMessage.extend({ message: receivedMessageSchema }),
  messageRead,
  messagesRead,
  messageDeleted,
  messageEdited.extend({ message: receivedMessageSchema }),
  typing,
  unreadMessagesFrameSchema.extend({ messages: z.array(receivedMessageSchema) }),
  ackFrameSchema.extend({ message: receivedMessageSchema.optional() }),
  errorFrameSchema.extend({ code: open(wireErrorCodeSchema) }),
]);

export type ReceivedFrame = z.infer<typeof receivedFrameSchema>;
export type ReceivedFrameType = ReceivedFrame["type"];
/** The frame of one `type`, as the client takes it. */
export type ReceivedFrameOf<T extends ReceivedFrameType> = Extract<ReceivedFrame, { type: T }>;
