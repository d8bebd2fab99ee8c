import { type Metadata, status as Status } from "@grpc/grpc-js";
import { ChatError, type ChatErrorCode } from "../chat/errors.ts";

/** A status to end a call with: what grpc-js takes as a call's error. */
export interface CallStatus {
  code: Status;
  details: string;
  metadata?: Metadata;
}

/** The gRPC code of each ChatError code; a new code fails `deno check` here until mapped. */
export function statusCodeOf(code: ChatErrorCode): Status {
  switch (code) {
    case "invalid_payload":
    case "unsupported_media":
      return Status.INVALID_ARGUMENT;
    case "not_found":
      return Status.NOT_FOUND;
    case "forbidden":
      return Status.PERMISSION_DENIED;
    case "failed_precondition":
      return Status.FAILED_PRECONDITION;
    case "payload_too_large":
    case "rate_limited":
      return Status.RESOURCE_EXHAUSTED;
    case "unavailable":
      return Status.UNAVAILABLE;
    case "internal":
      return Status.INTERNAL;
  }
}

/**
 * The one place a thrown error becomes a gRPC status. A field error names the field
 * (`page_token: has expired`); foreign errors and `internal` say nothing about their cause.
 */
export function toCallStatus(error: unknown): CallStatus {
  if (!(error instanceof ChatError) || error.code === "internal") {
    return { code: Status.INTERNAL, details: "internal error" };
  }
  const details = error.issues.length > 0
    ? error.issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ")
    : error.message;
  return { code: statusCodeOf(error.code), details };
}

/** Whether an error deserves a log line: the caller's mistakes do not. */
export function isServerFault(error: unknown): boolean {
  return !(error instanceof ChatError) || error.code === "internal";
}

/** The status of a call without valid credentials; auth is the plane's concern, not the domain's. */
export function unauthenticated(): CallStatus {
  return {
    code: Status.UNAUTHENTICATED,
    details: "missing or invalid authorization: expected `Bearer <admin token>`",
  };
}
