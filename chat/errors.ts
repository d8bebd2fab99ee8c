/** What went wrong, in words a caller can act on; each plane maps it to wire form once. */
export type ChatErrorCode =
  | "invalid_payload"
  | "not_found"
  | "forbidden"
  | "failed_precondition"
  | "payload_too_large"
  | "unsupported_media"
  | "rate_limited"
  | "unavailable"
  | "internal";

/** A field-level problem, named by its path in the request. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** The one error type of the service. `retryable` tells callers whether trying again can help. */
export class ChatError extends Error {
  override readonly name = "ChatError";
  readonly code: ChatErrorCode;
  readonly retryable: boolean;
  readonly issues: FieldIssue[];

  constructor(
    code: ChatErrorCode,
    message: string,
    options: { cause?: unknown; issues?: FieldIssue[] } = {},
  ) {
    super(message, { cause: options.cause });
    this.code = code;
    this.retryable = code === "unavailable" || code === "rate_limited";
    this.issues = options.issues ?? [];
  }
}

/** Turns a zod-style issue list into field issues. */
export function toFieldIssues(
  issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>,
): FieldIssue[] {
  return issues.map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
  }));
}
