import assert from "node:assert/strict";
import { createTokenBucket } from "./token_bucket.ts";

Deno.test("createTokenBucket() allows a burst, then the rate", () => {
  let now = 0;
  const bucket = createTokenBucket({ rate: 10, burst: 3, now: () => now });
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
