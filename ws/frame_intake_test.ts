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
