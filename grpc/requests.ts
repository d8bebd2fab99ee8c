import { z } from "zod";
import { ChatError, toFieldIssues } from "../chat/errors.ts";
import { MAX_USER_ID_LENGTH, UUID_PATTERN } from "../chat/types.ts";
import type { PageTokens } from "./page_token.ts";

/** Request fields as the admin plane reads them; every failure names its field. */

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

/** The earliest and latest instants a google.protobuf.Timestamp may hold. */
const MIN_SECONDS = -62_135_596_800;
const MAX_SECONDS = 253_402_300_799;

/**
 * A string field of a request. PostgreSQL text cannot hold NUL, so one would fail deep in a
 * write (after the change it audits, say): refused here, naming the field, like any bad value.
 */
export const text = z.string().refine((value) => !value.includes("\0"), {
  message: "must not contain NUL characters",
  abort: true,
});

/** A user id or other opaque id: required. */
export const userId = text.trim().min(1, "is required").max(MAX_USER_ID_LENGTH, "is too long");

/**
 * A chat or message id: required, and a UUID, in lower case as the store and the bus subjects
 * spell it (a subject built from an upper-case id would never hear an event).
 */
export const uuid = text.trim().min(1, "is required").regex(UUID_PATTERN, "must be a UUID")
  .toLowerCase();

/**
 * An optional filter: the empty string means "any". Blanks are refused rather than trimmed to
 * "any": a caller that meant one user's or one chat's rows must never get everyone's.
 */
const optionalFilter = text.refine((value) => value === "" || value.trim() !== "", {
  message: "must not be blank (empty: any)",
  abort: true,
}).trim();

export const optionalUserId = optionalFilter.max(MAX_USER_ID_LENGTH, "is too long")
  .transform((value) => value === "" ? undefined : value);

export const optionalUuid = optionalFilter
  .refine((value) => value === "" || UUID_PATTERN.test(value), "must be a UUID")
  .toLowerCase()
  .transform((value) => value === "" ? undefined : value);

/** A moderator's id and reason: both go to the audit log, so both are required. */
export const moderator = {
  moderator_id: userId,
  reason: text.trim().min(1, "is required").max(1000, "is too long"),
};

/** 0 is the default; more than the maximum is read as the maximum. */
export const pageSize = z.number().int().min(0, "must not be negative")
  .transform((value) => value === 0 ? DEFAULT_PAGE_SIZE : Math.min(value, MAX_PAGE_SIZE));

export const pageToken = text.max(4096, "is not a page token of this service");

/** An optional google.protobuf.Timestamp as given (null when unset). */
export const optionalTimestampValue = z
  .object({
    seconds: z.number().int().min(MIN_SECONDS, "is out of range").max(
      MAX_SECONDS,
      "is out of range",
    ),
    nanos: z.number().int().min(0, "is out of range").max(999_999_999, "is out of range"),
  })
  .nullable();

/**
 * An optional google.protobuf.Timestamp as an ISO-8601 string rounded up to the millisecond.
 * Messages are stored in whole milliseconds, so "at or after T" and "before T" hold of them
 * exactly when they hold of T rounded up; rounded down, T a nanosecond after a message would
 * count it as sent at or after T, and not as sent before it. Two instants within one
 * millisecond are equal once rounded: compare them as given.
 */
export function timestampIso(
  value: z.output<typeof optionalTimestampValue>,
): string | undefined {
  if (value === null) return undefined;
  const ms = value.seconds * 1000 + Math.ceil(value.nanos / 1_000_000);
  // the last instant would round up into the year 10000, which PostgreSQL refuses
  return new Date(Math.min(ms, MAX_SECONDS * 1000 + 999)).toISOString();
}

/** An optional google.protobuf.Timestamp, as timestampIso gives it. */
export const optionalTimestamp = optionalTimestampValue.transform(timestampIso);

/** Parses a request; ChatError `invalid_payload` naming every bad field. */
export function parseRequest<T extends z.ZodType>(schema: T, request: unknown): z.output<T> {
  const parsed = schema.safeParse(request);
  if (!parsed.success) {
    throw new ChatError("invalid_payload", "invalid request", {
      issues: toFieldIssues(parsed.error.issues),
    });
  }
  return parsed.data;
}

/** The object without its undefined properties (for exactOptionalPropertyTypes). */
export function defined<T extends object>(
  value: T,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(
    Object.entries(value).filter(([, field]) => field !== undefined),
  ) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/**
 * The cursor of a page token for `method` with these filters, or undefined for the first
 * page. ChatError `invalid_payload` (field `page_token`) for any token it cannot honour.
 */
export function readCursor<T extends z.ZodType>(
  tokens: PageTokens,
  request: { method: string; filters: unknown; token: string },
  schema: T,
): z.output<T> | undefined {
  if (request.token === "") return undefined;
  const parsed = schema.safeParse(tokens.read(request.method, request.filters, request.token));
  if (!parsed.success) {
    throw new ChatError("invalid_payload", "invalid page token", {
      issues: [{ path: "page_token", message: "is not a page token of this service" }],
    });
  }
  return parsed.data;
}

/** The token of the page after `next`, or "" on the last page. */
export function nextPageToken(
  tokens: PageTokens,
  request: { method: string; filters: unknown },
  next: unknown,
): string {
  return next === null ? "" : tokens.issue(request.method, request.filters, next);
}

/** A (created_at, key) cursor; the key is a row's UUID, or the user id of a ban. */
export const timeCursor = z.object({
  at: z.string().max(64),
  key: z.string().max(MAX_USER_ID_LENGTH),
});
