/**
 * Property-based fuzzing of the WebSocket plane: generated and mutated frames thrown at a
 * live server, on both endpoints. Every reply must be a frame of the contract, the socket must stay usable (or
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
/** ISO-8601 times with offsets, the years' ends among them: `before` cursors and near misses. */
const isoTime = fc.record({
  at: fc.oneof(
    fc.constantFrom("0000-01-01T00:00:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59"),
    fc.date({ min: new Date("0000-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z") })
      .filter((date) => !Number.isNaN(date.getTime()))
      .map((date) => date.toISOString().slice(0, 19)),
  ),
  offset: fc.oneof(
    fc.constant("Z"),
    fc.tuple(
      fc.constantFrom("+", "-"),
      fc.integer({ min: 0, max: 23 }),
      fc.integer({ max: 59, min: 0 }),
    )
      .map(([sign, hours, minutes]) =>
        `${sign}${String(hours).padStart(2, "0")}:${String(minutes).padStart(2, "0")}`
      ),
  ),
}).map(({ at, offset }) => at + offset);
/** Frames' texts; `chatId` (the fuzzer's chat) among the chat ids, for /v1/ws/chats/. */
const rawText = (chatId: string) => {
  const frameLike = fc.record({
    action: fc.oneof(fc.constantFrom(...actions), fc.string()),
    request_id: fc.option(fc.oneof(fc.string({ maxLength: 80 }), fc.integer()), { nil: undefined }),
    chat_id: fc.option(fc.oneof(fc.constant(chatId), hostileValue), { nil: undefined }),
    message_id: fc.option(hostileValue, { nil: undefined }),
    receiver_id: fc.option(hostileValue, { nil: undefined }),
    media_type: fc.option(
      fc.oneof(fc.constantFrom("text", "image", "audio", "video"), fc.string()),
      {
        nil: undefined,
      },
    ),
    content: fc.option(hostileValue, { nil: undefined }),
    image: fc.option(hostileValue, { nil: undefined }),
    seq: fc.option(hostileValue, { nil: undefined }),
    limit: fc.option(hostileValue, { nil: undefined }),
    before_seq: fc.option(hostileValue, { nil: undefined }),
    after_seq: fc.option(hostileValue, { nil: undefined }),
    is_typing: fc.option(hostileValue, { nil: undefined }),
    before: fc.option(fc.oneof(isoTime, hostileValue), { nil: undefined }),
  }, { requiredKeys: ["action"] });
  return fc.oneof(
    frameLike.map((frame) => JSON.stringify(frame)),
    fc.string(),
    fc.json(),
    fc.constant("[".repeat(5000) + "]".repeat(5000)),
    fc.constant('{"action":"send_message","content":' + "[".repeat(2000)),
    fc.constant("null"),
  );
};

Deno.test("fuzzed frames get contract frames back and disturb no one else", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { WS_RATE_PER_SECOND: "100000", WS_RATE_BURST: "100000" },
  });
  const chat = await cluster.main.service.chat.createChat("fuzzer", "shop");
  const other = await cluster.main.service.chat.createChat("bystander", "shop");
  await using fuzzer = await cluster.openChat("fuzzer", chat.id);
  await using fuzzerOnAll = await cluster.openChats("fuzzer");
  await using bystander = await cluster.openChat("bystander", other.id);
  await using vendor = await cluster.openChat("shop", other.id);
  await fuzzer.nextOfType("unread_messages");
  await fuzzerOnAll.nextOfType("chats");
  await bystander.nextOfType("unread_messages");
  await vendor.nextOfType("unread_messages");

  let barrier = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.boolean(),
      fc.array(rawText(chat.id), { minLength: 1, maxLength: 5 }),
      async (onAll, texts) => {
        const socket = onAll ? fuzzerOnAll : fuzzer;
        const before = socket.frames.length;
        for (const text of texts) socket.send(text);
        // a barrier: frames are answered in order, so everything before it has been answered
        const id = `barrier-${++barrier}`;
        const reply = await socket.request({
          action: "unread_message",
          request_id: id,
          ...(onAll ? { chat_id: chat.id } : {}),
        });
        assert.equal(reply.type, "ack", "the socket still works after fuzzed frames");
        for (const frame of socket.frames.slice(before)) {
          const parsed = serverFrameSchema.safeParse(frame);
          assert.ok(parsed.success, `not a contract frame: ${JSON.stringify(frame).slice(0, 300)}`);
          assert.notEqual((frame as Frame).code, "internal", JSON.stringify(frame));
        }
      },
    ),
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

Deno.test("list_chats with any ISO-8601 time as its cursor pages, or is refused naming before: never internal", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { WS_RATE_PER_SECOND: "100000", WS_RATE_BURST: "100000" },
  });
  await cluster.main.service.chat.createChat("fuzzer", "shop");
  await using socket = await cluster.openChats("fuzzer");
  await socket.nextOfType("chats");
  let requests = 0;
  await fc.assert(
    fc.asyncProperty(isoTime, async (before) => {
      const id = `page-${++requests}`;
      const reply = await socket.request({ action: "list_chats", request_id: id, before });
      if (reply.type === "error") {
        assert.equal(reply.code, "invalid_payload", `${before}: ${JSON.stringify(reply)}`);
        assert.deepEqual(reply.issues?.map((issue: Frame) => issue.path), ["before"], before);
      } else {
        assert.equal(reply.type, "ack", `${before}: ${JSON.stringify(reply)}`);
      }
    }),
    { numRuns: RUNS },
  );
});
