/**
 * Property-based fuzzing of the WebSocket plane: generated and mutated frames thrown at a
 * live server. Every reply must be a frame of the contract, the socket must stay usable (or
 * be closed with a contract code), and other clients must not notice. FUZZ_RUNS sets the
 * number of runs (brief in CI; `FUZZ_RUNS=2000 deno task test tests/fuzz_test.ts` for long).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { serverFrameSchema } from "../protocol/server_frames.ts";
import { actions } from "../ws/frames.ts";
import { startCluster } from "./support/service.ts";
import type { Frame } from "./support/ws_client.ts";

const RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? "60");

/** Frames shaped like the contract's, with hostile values in every field. */
const hostileValue = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme" }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant("'; drop table messages; --"),
  fc.constant("\u0000\u0007\u202e"),
  fc.uuid(),
  fc.constant("data:image/png;base64,%%%not base64%%%"),
  fc.array(fc.integer(), { maxLength: 5 }),
  fc.object({ maxDepth: 2 }),
);
const frameLike = fc.record({
  action: fc.oneof(fc.constantFrom(...actions), fc.string()),
  request_id: fc.option(fc.oneof(fc.string({ maxLength: 80 }), fc.integer()), { nil: undefined }),
  chat_id: fc.option(hostileValue, { nil: undefined }),
  message_id: fc.option(hostileValue, { nil: undefined }),
  receiver_id: fc.option(hostileValue, { nil: undefined }),
  media_type: fc.option(fc.oneof(fc.constantFrom("text", "image", "audio", "video"), fc.string()), {
    nil: undefined,
  }),
  content: fc.option(hostileValue, { nil: undefined }),
  image: fc.option(hostileValue, { nil: undefined }),
  seq: fc.option(hostileValue, { nil: undefined }),
  limit: fc.option(hostileValue, { nil: undefined }),
  before_seq: fc.option(hostileValue, { nil: undefined }),
  after_seq: fc.option(hostileValue, { nil: undefined }),
  is_typing: fc.option(hostileValue, { nil: undefined }),
}, { requiredKeys: ["action"] });
const rawText = fc.oneof(
  frameLike.map((frame) => JSON.stringify(frame)),
  fc.string(),
  fc.json(),
  fc.constant("[".repeat(5000) + "]".repeat(5000)),
  fc.constant('{"action":"send_message","content":' + "[".repeat(2000)),
  fc.constant("null"),
);

Deno.test("fuzzed frames get contract frames back and disturb no one else", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { WS_RATE_PER_SECOND: "100000", WS_RATE_BURST: "100000" },
  });
  const chat = await cluster.main.service.chat.createChat("fuzzer", "shop");
  const other = await cluster.main.service.chat.createChat("bystander", "shop");
  await using fuzzer = await cluster.openChat("fuzzer", chat.id);
  await using bystander = await cluster.openChat("bystander", other.id);
  await using vendor = await cluster.openChat("shop", other.id);
  await fuzzer.nextOfType("unread_messages");
  await bystander.nextOfType("unread_messages");
  await vendor.nextOfType("unread_messages");

  let barrier = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(rawText, { minLength: 1, maxLength: 5 }), async (texts) => {
      const before = fuzzer.frames.length;
      for (const text of texts) fuzzer.send(text);
      // a barrier: frames are answered in order, so everything before it has been answered
      const id = `barrier-${++barrier}`;
      const reply = await fuzzer.request({ action: "unread_message", request_id: id });
      assert.equal(reply.type, "ack", "the socket still works after fuzzed frames");
      for (const frame of fuzzer.frames.slice(before)) {
        const parsed = serverFrameSchema.safeParse(frame);
        assert.ok(parsed.success, `not a contract frame: ${JSON.stringify(frame).slice(0, 300)}`);
        assert.notEqual((frame as Frame).code, "internal", JSON.stringify(frame));
      }
    }),
    { numRuns: RUNS },
  );
  fuzzer.send(new Uint8Array([0xff, 0xfe, 0x00]));
  const binary = await fuzzer.next((frame) => frame.code === "invalid_frame", "binary refused");
  assert.equal(binary.type, "error");

  const sent = await bystander.request({
    action: "send_message",
    receiver_id: "shop",
    media_type: "text",
    content: "still here",
  });
  assert.equal(sent.type, "ack");
  const received = await vendor.nextOfType("chat_message");
  assert.equal(received.message.content, "still here");
});
