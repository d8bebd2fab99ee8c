import assert from "node:assert/strict";
import { type Admitted, createRequestLimits, type RequestLimits } from "./request_limits.ts";

const LIMITS: RequestLimits = {
  ratePerSecond: 2,
  rateBurst: 4,
  concurrent: { upload: 2, download: 3 },
};

function admitted(outcome: ReturnType<ReturnType<typeof createRequestLimits>["admit"]>): Admitted {
  assert.ok(outcome.admitted, `refused: ${JSON.stringify(outcome)}`);
  return outcome;
}

Deno.test("a user over the burst is refused with the seconds to the next token; another user is not", () => {
  let now = 0;
  const limits = createRequestLimits({ ...LIMITS, ratePerSecond: 0.25 }, { now: () => now });
  for (let i = 0; i < 4; i++) admitted(limits.admit("alice", "download")).release();
  assert.deepEqual(limits.admit("alice", "download"), {
    admitted: false,
    limit: "rate",
    retryAfterSeconds: 4,
  });
  // uploads and downloads share the one bucket
  assert.equal(limits.admit("alice", "upload").admitted, false);
  admitted(limits.admit("bob", "download"));
  now += 4_000;
  admitted(limits.admit("alice", "upload"));
});

Deno.test("open requests are capped per kind, a release lets the next in, and releasing twice frees one", () => {
  const limits = createRequestLimits(LIMITS, { now: () => 0 });
  const first = admitted(limits.admit("alice", "upload"));
  admitted(limits.admit("alice", "upload"));
  assert.deepEqual(limits.admit("alice", "upload"), {
    admitted: false,
    limit: "concurrency",
    retryAfterSeconds: 1,
  });
  // the download cap is another
  admitted(limits.admit("alice", "download"));
  first.release();
  first.release();
  admitted(limits.admit("alice", "upload"));
  assert.equal(limits.admit("alice", "upload").admitted, false);
});

Deno.test("a request refused for concurrency takes no token", () => {
  const limits = createRequestLimits({ ...LIMITS, concurrent: { upload: 1, download: 1 } }, {
    now: () => 0,
  });
  const open = admitted(limits.admit("alice", "upload"));
  for (let i = 0; i < 10; i++) assert.equal(limits.admit("alice", "upload").admitted, false);
  open.release();
  // 4 tokens in all: one was taken by the open upload
  for (let i = 0; i < 3; i++) admitted(limits.admit("alice", "upload")).release();
  assert.equal(limits.admit("alice", "upload").admitted, false);
});

Deno.test("occupy() shares the cap on open requests with admit() and takes no token", () => {
  const limits = createRequestLimits(LIMITS, { now: () => 0 });
  const held = admitted(limits.occupy("alice", "upload"));
  const open = admitted(limits.admit("alice", "upload"));
  assert.deepEqual(limits.occupy("alice", "upload"), {
    admitted: false,
    limit: "concurrency",
    retryAfterSeconds: 1,
  });
  assert.equal(limits.admit("alice", "upload").admitted, false);
  held.release();
  held.release();
  open.release();
  // 4 tokens in all: only the admitted upload took one
  for (let i = 0; i < 3; i++) admitted(limits.admit("alice", "upload")).release();
  assert.equal(limits.admit("alice", "upload").admitted, false);
  admitted(limits.occupy("alice", "upload")).release();
});

Deno.test("idle users are forgotten once their bucket would be full again; users with requests open are kept", () => {
  let now = 0;
  const limits = createRequestLimits(LIMITS, { now: () => now });
  const open = admitted(limits.admit("alice", "download"));
  for (let user = 0; user < 1000; user++) {
    admitted(limits.admit(`user-${user}`, "upload")).release();
  }
  assert.equal(limits.trackedUsers, 1001);
  // a burst of 4 at 2 a second is full again 2 s after the last request
  now += 1_999;
  admitted(limits.admit("bob", "download")).release();
  assert.equal(limits.trackedUsers, 1002);
  now += 1;
  admitted(limits.admit("carol", "download")).release();
  assert.equal(limits.trackedUsers, 3, "alice (open), bob (recent) and carol");
  open.release();
  now += 10_000;
  admitted(limits.admit("dave", "download"));
  assert.equal(limits.trackedUsers, 1);
});
