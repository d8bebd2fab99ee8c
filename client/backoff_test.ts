import assert from "node:assert/strict";
import { backoffDelay } from "./backoff.ts";

Deno.test("backoffDelay() doubles from the first delay up to the cap", () => {
  const options = { initialMs: 100, maxMs: 1_000, jitter: 0 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 10].map((attempt) => backoffDelay(attempt, options)),
    [100, 200, 400, 800, 1_000, 1_000],
  );
});

Deno.test("backoffDelay() takes at most the jitter's share off at random", () => {
  const options = { initialMs: 1_000, maxMs: 1_000, jitter: 0.5 };
  assert.equal(backoffDelay(0, { ...options, random: () => 0 }), 1_000);
  assert.equal(backoffDelay(0, { ...options, random: () => 0.999999 }), 500);
  for (let index = 0; index < 100; index++) {
    const delay = backoffDelay(3, options);
    assert.ok(delay >= 500 && delay <= 1_000, `${delay} out of range`);
  }
});

Deno.test("backoffDelay() is never longer than setTimeout can wait, whatever the cap", () => {
  const delay = backoffDelay(100, { maxMs: Infinity, jitter: 0 });
  assert.ok(delay <= 2 ** 31 - 1, `${delay} ms would fire at once`);
});
