import { status as Status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { ChatError, type ChatErrorCode } from "../chat/errors.ts";
import { isServerFault, statusCodeOf, toCallStatus, unauthenticated } from "./status.ts";

Deno.test("statusCodeOf maps every ChatError code to the contract's status", () => {
  const expected: Record<ChatErrorCode, Status> = {
    invalid_payload: Status.INVALID_ARGUMENT,
    not_found: Status.NOT_FOUND,
    forbidden: Status.PERMISSION_DENIED,
    failed_precondition: Status.FAILED_PRECONDITION,
    payload_too_large: Status.RESOURCE_EXHAUSTED,
    unsupported_media: Status.INVALID_ARGUMENT,
    rate_limited: Status.RESOURCE_EXHAUSTED,
    unavailable: Status.UNAVAILABLE,
    internal: Status.INTERNAL,
  };
  for (const [code, status] of Object.entries(expected)) {
    assert.equal(statusCodeOf(code as ChatErrorCode), status, code);
  }
});

Deno.test("toCallStatus names every bad field in the details", () => {
  const error = new ChatError("invalid_payload", "invalid request", {
    issues: [
      { path: "chat_id", message: "must be a UUID" },
      { path: "page_size", message: "must not be negative" },
    ],
  });
  assert.deepEqual(toCallStatus(error), {
    code: Status.INVALID_ARGUMENT,
    details: "chat_id: must be a UUID; page_size: must not be negative",
  });
  assert.deepEqual(toCallStatus(new ChatError("not_found", "no such chat")), {
    code: Status.NOT_FOUND,
    details: "no such chat",
  });
});

Deno.test("toCallStatus tells nothing of internal and foreign errors", () => {
  const leaky = new Error('relation "messages" does not exist at 10.0.0.3');
  for (const error of [leaky, new ChatError("internal", "select * from x", { cause: leaky })]) {
    assert.deepEqual(toCallStatus(error), { code: Status.INTERNAL, details: "internal error" });
    assert.equal(isServerFault(error), true);
  }
  assert.equal(isServerFault(new ChatError("unavailable", "db down")), false);
  assert.equal(unauthenticated().code, Status.UNAUTHENTICATED);
});
