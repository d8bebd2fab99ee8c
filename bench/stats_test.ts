import assert from "node:assert/strict";
import { shownMs, summarize } from "./stats.ts";

Deno.test("summarize() gives nearest-rank percentiles, rounded to 0.01 ms", () => {
  const samples = Array.from({ length: 100 }, (_, index) => 100 - index + 0.004);
  assert.deepEqual(summarize(samples), { count: 100, p50: 50, p90: 90, p99: 99, max: 100 });
  assert.deepEqual(summarize([7.125]), { count: 1, p50: 7.13, p90: 7.13, p99: 7.13, max: 7.13 });
});

Deno.test("summarize() of no samples has no percentiles, and the report says none, not 0 ms", () => {
  // a run in which nothing arrived must not read as one in which everything arrived at once
  assert.deepEqual(summarize([]), { count: 0, p50: null, p90: null, p99: null, max: null });
  assert.equal(shownMs(null), "none");
  assert.equal(shownMs(0.5), "0.5");
});
