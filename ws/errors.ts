import { ChatError, type ChatErrorCode } from "../chat/errors.ts";
import { CloseCode } from "../protocol/close_codes.ts";

/** Error codes of the `error` frame (protocol.md "Errors and close codes"). */
export type WireErrorCode =
  | "invalid_json"
  | "invalid_frame"
  | "unknown_action"
  | "invalid_payload"
  | "not_found"
  | "forbidden"
  | "payload_too_large"
  | "unsupported_media"
  | "rate_limited"
  | "unavailable"
  | "internal";

/** Close codes of the WebSocket plane: part of the contract module clients share. */
export { CloseCode };

export interface ErrorFrame {
  type: "error";
  code: WireErrorCode;
  message: string;
  request_id?: string;
  action?: string;
  issues?: Array<{ path: string; message: string }>;
}

function wireCode(code: ChatErrorCode): WireErrorCode {
  switch (code) {
    case "invalid_payload":
    case "failed_precondition":
      return "invalid_payload";
    case "not_found":
      return "not_found";
    case "forbidden":
      return "forbidden";
    case "payload_too_large":
      return "payload_too_large";
    case "unsupported_media":
      return "unsupported_media";
    case "rate_limited":
      return "rate_limited";
    case "unavailable":
      return "unavailable";
    case "internal":
      return "internal";
  }
}

/** The one place a thrown error becomes an `error` frame; foreign errors become `internal`. */
export function toErrorFrame(
  error: unknown,
  context: { request_id?: string | undefined; action?: string | undefined },
): ErrorFrame {
  const frame: ErrorFrame = error instanceof ChatError
    ? { type: "error", code: wireCode(error.code), message: error.message }
    : { type: "error", code: "internal", message: "internal error" };
  if (error instanceof ChatError && error.issues.length > 0) frame.issues = error.issues;
  if (context.request_id !== undefined) frame.request_id = context.request_id;
  if (context.action !== undefined) frame.action = context.action;
  return frame;
}

/** How a connect-time failure closes the socket. */
export function closeCodeFor(error: unknown): number {
  if (!(error instanceof ChatError)) return CloseCode.internal;
  switch (error.code) {
    case "forbidden":
    case "not_found":
      return CloseCode.forbidden;
    case "unavailable":
    case "rate_limited":
      return CloseCode.tryAgainLater;
    case "invalid_payload":
    case "failed_precondition":
    case "payload_too_large":
    case "unsupported_media":
    case "internal":
      return CloseCode.internal;
  }
}

/** The HTTP status of a ChatError on the HTTP routes (media); foreign errors are 500. */
export function httpStatusFor(error: unknown): number {
  if (!(error instanceof ChatError)) return 500;
  switch (error.code) {
    case "invalid_payload":
      return 400;
    case "not_found":
      return 404;
    case "forbidden":
      return 403;
    case "failed_precondition":
      return 409;
    case "payload_too_large":
      return 413;
    case "unsupported_media":
      return 415;
    case "rate_limited":
      return 429;
    case "unavailable":
      return 503;
    case "internal":
      return 500;
  }
}
