import assert from "node:assert/strict";
import type { ChatSummary as StoredSummary } from "../chat/types.ts";
import { CloseCode as ServerCloseCode, type ErrorFrame, type WireErrorCode } from "../ws/errors.ts";
import { CloseCode } from "./close_codes.ts";
import {
  type ChatSummary,
  type ServerFrameOf,
  serverFrameSchema,
  wireErrorCodeSchema,
} from "./server_frames.ts";

/** True only when A and B are the same type; a mismatch fails `deno check`. */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;

// The server builds these frames from its own types; the schemas must say the same.
const sameCodes: Same<WireErrorCode, (typeof wireErrorCodeSchema)["options"][number]> = true;
const sameSummary: Same<StoredSummary, ChatSummary> = true;
const errorFits = (frame: ErrorFrame): ServerFrameOf<"error"> => frame;

Deno.test("the server's own types of error frames and chat rows are the schemas' types", () => {
  assert.ok(sameCodes && sameSummary);
  const frame = errorFits({ type: "error", code: "not_found", message: "no such message" });
  assert.ok(serverFrameSchema.safeParse(frame).success);
});

Deno.test("the WebSocket plane closes with the contract's close codes", () => {
  assert.equal(ServerCloseCode, CloseCode);
  assert.deepEqual(CloseCode, {
    tokenInvalid: 4401,
    forbidden: 4403,
    operatorDisconnect: 4408,
    tooMany: 4429,
    frameTooLarge: 1009,
    internal: 1011,
    restarting: 1012,
    tryAgainLater: 1013,
  });
});

Deno.test("serverFrameSchema refuses a frame whose message lacks a field", () => {
  const at = "2026-01-01T00:00:00.000Z";
  const message = {
    id: "m",
    chat_id: "c",
    seq: 1,
    sender_id: "a",
    receiver_id: "b",
    media_type: "text",
    content: "hi",
    media_url: null,
    is_read: false,
    read_at: null,
    edited_at: null,
    deleted: false,
    created_at: at,
    updated_at: at,
    client_id: null,
  };
  assert.ok(serverFrameSchema.safeParse({ type: "chat_message", chat_id: "c", message }).success);
  const { seq: _, ...withoutSeq } = message;
  assert.ok(
    !serverFrameSchema.safeParse({ type: "chat_message", chat_id: "c", message: withoutSeq })
      .success,
  );
});
