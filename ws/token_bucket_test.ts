import assert from "node:assert/strict";
import { TokenBucket } from "./token_bucket.ts";

Deno.test("TokenBucket allows a burst, then the rate", () => {
  let now = 0;
  const bucket = new TokenBucket({ ratePerSecond: 10, rateBurst: 3 }, () => now);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [
    true,
    true,
    true,
    false,
  ]);
  now += 100; // one token at 10 a second
  assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false);
  now += 10_000; // refills only up to the burst
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [
    true,
    true,
    true,
    false,
  ]);
});

Deno.test("TokenBucket keeps its tokens when the clock steps back, and refills from there", () => {
  let now = 1_000_000;
  const bucket = new TokenBucket({ ratePerSecond: 10, rateBurst: 3 }, () => now);
  assert.equal(bucket.take(), true);
  // the wall clock set back a minute (an NTP step, a VM resumed): no one sent anything
  now -= 60_000;
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take()], [true, true, false]);
  now += 100; // one token at 10 a second, counted from the new time
  assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false);
});
