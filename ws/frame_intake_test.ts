import assert from "node:assert/strict";
import { earlyFrameLimit, FrameIntake, queueLimits } from "./frame_intake.ts";

const limits = { ratePerSecond: 10, rateBurst: 3, floodLimit: 2 };

/** An intake whose clock moves only with `advance`. */
function intakeAt(maxFrameBytes = 100) {
  let now = 0;
  return {
    intake: new FrameIntake({ limits, maxFrameBytes, now: () => now }),
    advance: (ms: number) => now += ms,
  };
}

Deno.test("FrameIntake admits a burst, refuses the next frame, and floods after floodLimit refusals in a row", () => {
  const { intake } = intakeAt();
  assert.deepEqual([intake.admit(0), intake.admit(0), intake.admit(0)], [
    "admitted",
    "admitted",
    "admitted",
  ]);
  assert.equal(intake.admit(0), "refused");
  assert.equal(intake.admit(0), "flooding");
});

Deno.test("FrameIntake forgets the refusals once a frame is admitted", () => {
  const { intake, advance } = intakeAt();
  for (let i = 0; i < 3; i++) intake.admit(0);
  assert.equal(intake.admit(0), "refused");
  advance(100); // one token at 10 a second
  assert.equal(intake.admit(0), "admitted");
  assert.equal(intake.admit(0), "refused");
});

Deno.test("FrameIntake refuses a frame with no room in the queue, and has room again when one leaves", () => {
  const { intake, advance } = intakeAt(100);
  assert.equal(intake.admit(60), "admitted");
  assert.equal(intake.admit(50), "refused"); // 110 units would wait, over one frame's worth
  assert.equal(intake.admit(40), "admitted");
  intake.leaveQueue(60);
  advance(1_000);
  assert.equal(intake.admit(50), "admitted");
});

Deno.test("FrameIntake queues no more than a burst of frames however small", () => {
  const { intake, advance } = intakeAt(100);
  for (let i = 0; i < 3; i++) assert.equal(intake.admit(1), "admitted");
  advance(1_000);
  assert.equal(intake.admit(1), "refused");
  assert.equal(intake.admit(0), "admitted"); // not queued: only the rate counts
  intake.leaveQueue(1);
  assert.equal(intake.admit(1), "admitted");
});

Deno.test("FrameIntake takes no token for a frame refused for want of room", () => {
  const { intake } = intakeAt(100);
  assert.equal(intake.admit(100), "admitted");
  assert.equal(intake.admit(1), "refused");
  intake.leaveQueue(100);
  assert.deepEqual([intake.admit(0), intake.admit(0)], ["admitted", "admitted"]);
  assert.equal(intake.admit(0), "refused");
});

Deno.test("earlyFrameLimit is a burst and then floodLimit frames; queueLimits a burst of frames and one frame's text", () => {
  assert.equal(earlyFrameLimit(limits), 5);
  assert.deepEqual(queueLimits(limits, 100), { frames: 3, size: 100 });
});

Deno.test("FrameIntake.take queues a frame it admits and keeps a refused one only as its rate_limited answer", () => {
  const { intake } = intakeAt(1000);
  const frame = (id: string) =>
    JSON.stringify({ action: "ping", request_id: id, padding: "x".repeat(600) });
  const first = intake.take(frame("a"));
  assert.equal(first.to, "queue");
  // the queue holds one frame's text: the second waits as its answer, not as its text
  assert.deepEqual(intake.take(frame("b")), {
    to: "answer",
    error: {
      type: "error",
      code: "rate_limited",
      message: "too many frames, slow down",
      request_id: "b",
      action: "ping",
    },
  });
  assert.deepEqual(intake.take(frame("c")), { to: "close", code: 4429, reason: "flooding" });
});

Deno.test("FrameIntake.take closes 1009 on a frame over the maximum and answers binary and unreadable frames", () => {
  const { intake } = intakeAt(100);
  assert.deepEqual(intake.take("x".repeat(101)), {
    to: "close",
    code: 1009,
    reason: "frame too large",
  });
  const binary = intake.take(new ArrayBuffer(4));
  assert.equal(binary.to === "answer" && binary.error.code, "invalid_frame");
  const unreadable = intake.take("{");
  assert.equal(unreadable.to === "answer" && unreadable.error.code, "invalid_json");
});
