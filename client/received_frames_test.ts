import assert from "node:assert/strict";
import type { ServerFrame, ServerFrameType } from "../protocol/mod.ts";
import { historyPage, storedMessage } from "../tests/support/stored_messages.ts";
import {
  type ReceivedFrame,
  receivedFrameSchema,
  type ReceivedFrameType,
} from "./received_frames.ts";

/** True only when A and B are the same type; a mismatch fails `deno check`. */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;

// every frame the contract allows is taken, under the same types (a schema of the wrong
// frame extended with a message would make a contract frame fail here)
const sameTypes: Same<ServerFrameType, ReceivedFrameType> = true;
const contractFrameFits = (frame: ServerFrame): ReceivedFrame => frame;

const X = "00000000-0000-4000-8000-00000000000a";
const takes = (frame: unknown) => receivedFrameSchema.safeParse(frame).success;

Deno.test("receivedFrameSchema takes an error code and a media type a later server may add", () => {
  assert.ok(sameTypes);
  assert.ok(takes(contractFrameFits({ type: "error", code: "not_found", message: "gone" })));
  assert.ok(takes({ type: "error", code: "edit_window_closed", message: "too late" }));
  const sticker = { ...storedMessage(X, 2), media_type: "sticker" };
  assert.ok(takes({ type: "chat_message", chat_id: X, message: sticker }));
  assert.ok(takes({ type: "message_edited", chat_id: X, message: sticker }));
  assert.ok(takes({ type: "ack", request_id: "r", action: "send_message", message: sticker }));
  assert.ok(takes(historyPage(X, [sticker])));
  assert.ok(takes({ type: "unread_messages", chat_id: X, count: 1, messages: [sticker] }));
});

Deno.test("receivedFrameSchema still refuses missing fields and wrong types", () => {
  assert.ok(!takes({ type: "error", code: 42, message: "a number" }));
  assert.ok(!takes({ type: "error", code: "not_found" }), "no message");
  const { seq: _, ...withoutSeq } = storedMessage(X, 2);
  assert.ok(!takes({ type: "chat_message", chat_id: X, message: withoutSeq }));
  assert.ok(
    !takes({ type: "chat_message", chat_id: X, message: { ...storedMessage(X, 2), id: 7 } }),
  );
  assert.ok(
    !takes({
      type: "chat_message",
      chat_id: X,
      message: { ...storedMessage(X, 2), media_type: null },
    }),
  );
  assert.ok(!takes({ type: "sticker_sent", chat_id: X }), "an unknown frame type");
});
