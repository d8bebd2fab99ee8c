import { z } from "zod";
import { MAX_USER_ID_LENGTH, mediaTypeSchema } from "../chat/types.ts";

/**
 * Client frames (protocol.md "Frames from the client"). Unknown fields are ignored; a field given
 * as null counts as absent (parseClientFrame).
 */

const requestId = z.string().min(1).max(64).optional();
/**
 * A chat, message or media id: any 8-4-4-4-12 hex, in either case, as UUID_PATTERN (the path and
 * the admin plane) and the store's uuid type take it. z.uuid() would also want RFC 4122's version
 * and variant bits, refusing in a frame ids the path takes (imported ones, say).
 */
const id = z.guid();
const chatId = id.optional();
/** The largest seq the store holds (an `integer` column). */
const MAX_SEQ = 2_147_483_647;
/**
 * A seq asked for, at least `min`: any safe integer, those past the store's largest taken as it
 * (a "mark all read", or a page from the end, may ask Number.MAX_SAFE_INTEGER).
 */
const seqFrom = (min: number) =>
  z.number().int().min(min).transform((value) => Math.min(value, MAX_SEQ));
/**
 * A string that is stored, or compared with one that was: PostgreSQL text cannot hold U+0000,
 * and a lone surrogate has no UTF-8, so it would be stored as U+FFFD (two client_ids differing
 * only there would be one, the content another than was sent). Both are refused here, naming
 * the field, rather than at the store or by altering the text.
 */
const storable = z.string()
  .refine((value) => !value.includes("\u0000"), { message: "must not contain NUL characters" })
  .refine((value) => value.isWellFormed(), {
    message: "must be well-formed Unicode (no lone surrogates)",
  });
/**
 * An `updated_at` cursor: ISO-8601 naming an instant in the years 1 to 9999 once in UTC. The
 * store is given it in UTC (postgres.js makes it `Date#toISOString()`), and an instant outside
 * those years comes out as year 0000 or `+010000`, which PostgreSQL refuses (the second as a
 * time zone it cannot read: `internal`); refused here instead, naming the field.
 */
const FIRST_CURSOR = Date.parse("0001-01-01T00:00:00.000Z");
const LAST_CURSOR = Date.parse("9999-12-31T23:59:59.999Z");
const cursor = z.iso.datetime({ offset: true }).refine((value) => {
  const instant = Date.parse(value);
  return instant >= FIRST_CURSOR && instant <= LAST_CURSOR;
}, { message: "must be a time in the years 1 to 9999 (UTC)" });
/**
 * A message's text: 1 to 4000 characters once trimmed (protocol.md). The JSON Schema of the
 * frames is of what a client writes, before the trim: it says so in words, as a maxLength there
 * would refuse text within the bound once its white space is trimmed.
 */
const text = storable.min(1).transform((value) => value.trim())
  .pipe(z.string().min(1).max(4000))
  .meta({
    description: "1 to 4000 characters once trimmed (white space at either end is dropped)",
  });
const base64 = z.string().min(1);

const common = { request_id: requestId, chat_id: chatId };

export const clientFrameSchemas = {
  ping: z.object({ ...common, action: z.literal("ping") }),
  load_latest_chat: z.object({
    ...common,
    action: z.literal("load_latest_chat"),
    limit: z.number().int().min(1).max(100).default(50),
    before_seq: seqFrom(1).optional(),
    after_seq: seqFrom(0).optional(),
  }),
  send_message: z.object({
    ...common,
    action: z.literal("send_message"),
    receiver_id: z.union([
      storable.min(1).max(MAX_USER_ID_LENGTH),
      z.number().int().transform(String),
    ]),
    media_type: mediaTypeSchema,
    content: text.optional(),
    image: base64.optional(),
    audio: base64.optional(),
    video: base64.optional(),
    /** An id from `POST /v1/media`, in place of base64. */
    media_id: id.optional(),
    client_id: storable.min(1).max(128).optional(),
  }).superRefine((frame, ctx) => {
    const bodies = (["content", "image", "audio", "video", "media_id"] as const)
      .filter((field) => frame[field] !== undefined);
    const expected = frame.media_type === "text" ? "content" : frame.media_type;
    const fits = bodies.length === 1 &&
      (bodies[0] === expected || (bodies[0] === "media_id" && frame.media_type !== "text"));
    if (!fits) {
      ctx.addIssue({
        code: "custom",
        path: [expected],
        message: `exactly one of content/image/audio/video (or media_id), matching media_type`,
      });
    }
  }),
  read_message: z.object({ ...common, action: z.literal("read_message"), message_id: id }),
  read_up_to: z.object({ ...common, action: z.literal("read_up_to"), seq: seqFrom(0) }),
  delete_message: z.object({ ...common, action: z.literal("delete_message"), message_id: id }),
  edit_message: z.object({
    ...common,
    action: z.literal("edit_message"),
    message_id: id,
    content: text,
  }),
  unread_message: z.object({ ...common, action: z.literal("unread_message") }),
  typing: z.object({ ...common, action: z.literal("typing"), is_typing: z.boolean() }),
  list_chats: z.object({
    ...common,
    action: z.literal("list_chats"),
    before: cursor.optional(),
  }),
} as const;

export type Action = keyof typeof clientFrameSchemas;
export type ClientFrame = { [A in Action]: z.output<(typeof clientFrameSchemas)[A]> }[Action];

export const actions = Object.keys(clientFrameSchemas) as Action[];

const isAction = (value: string): value is Action => Object.hasOwn(clientFrameSchemas, value);

/** Why a frame could not be read; `request_id`/`action` are echoed when they could be read. */
export interface FrameProblem {
  code: "invalid_json" | "invalid_frame" | "unknown_action" | "invalid_payload";
  message: string;
  request_id?: string;
  action?: string;
  issues?: Array<{ path: string; message: string }>;
}

/** Reads one text frame; never throws. */
export function parseClientFrame(text: string): ClientFrame | FrameProblem {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { code: "invalid_json", message: "frame is not valid JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { code: "invalid_frame", message: "frame must be a JSON object" };
  }
  const record = withoutNulls(value as Record<string, unknown>);
  const echo: Pick<FrameProblem, "request_id" | "action"> = {};
  const requestIdValue = requestId.safeParse(record.request_id);
  if (requestIdValue.success && requestIdValue.data !== undefined) {
    echo.request_id = requestIdValue.data;
  }
  if (typeof record.action !== "string") {
    return {
      code: "invalid_payload",
      message: "frame needs an action",
      ...echo,
      issues: [{ path: "action", message: "required string" }],
    };
  }
  if (!isAction(record.action)) {
    return { code: "unknown_action", message: "unknown action", ...echo };
  }
  echo.action = record.action;
  const parsed = clientFrameSchemas[record.action].safeParse(record);
  if (!parsed.success) {
    return {
      code: "invalid_payload",
      message: "invalid fields",
      ...echo,
      issues: parsed.error.issues.map((issue) => ({
        path: issue.path.map(String).join("."),
        message: issue.message,
      })),
    };
  }
  return parsed.data as ClientFrame;
}

/**
 * The frame with its null fields left out: null counts as absent, as the Django service read its
 * fields (`data.get(...)`) and as clients that write every field of their model send an unset one
 * (Dart's json_serializable, Kotlin with explicit nulls): `content: null` beside an `image` must
 * not fail "exactly one of". The frame itself when it has none, as nearly every frame has.
 */
function withoutNulls(record: Record<string, unknown>): Record<string, unknown> {
  for (const key in record) {
    if (record[key] === null) {
      return Object.fromEntries(Object.entries(record).filter(([, field]) => field !== null));
    }
  }
  return record;
}

export function isFrameProblem(value: ClientFrame | FrameProblem): value is FrameProblem {
  return "code" in value;
}
