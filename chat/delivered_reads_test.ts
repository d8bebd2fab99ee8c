import assert from "node:assert/strict";
import { DeliveredReads } from "./delivered_reads.ts";

Deno.test("a tally counts the marks after the window's start and up to its end, with their ms after the start", () => {
  const reads = new DeliveredReads();
  reads.add("chat", 1_000, 1); // at the start: outside, as the store's window has it
  reads.add("chat", 1_010, 1);
  reads.add("chat", 1_020, 3); // a messages_read of three
  reads.add("chat", 1_030, 1); // at the end: inside
  reads.add("chat", 1_031, 1);
  reads.add("other", 1_010, 1);
  assert.deepEqual(reads.tally("chat", 1_000, 1_030), { reads: 5, offsetsMs: 10 + 3 * 20 + 30 });
  assert.deepEqual(reads.tally("other", 1_000, 1_030), { reads: 1, offsetsMs: 10 });
  assert.deepEqual(reads.tally("unknown", 1_000, 1_030), { reads: 0, offsetsMs: 0 });
});

Deno.test("marks of the same ms are kept as one entry", () => {
  const reads = new DeliveredReads();
  for (let i = 0; i < 10; i++) reads.add("chat", 5_000, 1);
  reads.add("chat", 5_001, 2);
  assert.equal(reads.size, 2);
  assert.deepEqual(reads.tally("chat", 0, 10_000), {
    reads: 12,
    offsetsMs: 10 * 5_000 + 2 * 5_001,
  });
});

Deno.test("forgetting drops the marks up to a time, and every mark of a chat no longer followed", () => {
  const reads = new DeliveredReads();
  for (const at of [100, 200, 300]) {
    reads.add("followed", at, 1);
    reads.add("left", at, 1);
  }
  reads.forget(200, new Set(["followed"]));
  assert.equal(reads.size, 1);
  assert.deepEqual(reads.tally("followed", 0, 1_000), { reads: 1, offsetsMs: 300 });
  assert.deepEqual(reads.tally("left", 0, 1_000), { reads: 0, offsetsMs: 0 });
});

Deno.test("a chat keeps at most a hundred thousand entries: the older half goes", () => {
  const reads = new DeliveredReads();
  for (let at = 1; at <= 100_001; at++) reads.add("chat", at, 1);
  assert.equal(reads.size, 50_001);
  assert.equal(reads.tally("chat", 0, 50_000).reads, 0);
  assert.equal(reads.tally("chat", 50_000, 200_000).reads, 50_001);
});
