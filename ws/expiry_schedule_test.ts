import assert from "node:assert/strict";
import { createExpirySchedule } from "./expiry_schedule.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("createExpirySchedule() expires each item once, at its bucket's end, earliest first", async () => {
  const expired: Array<[string, number]> = [];
  const start = Date.now();
  const schedule = createExpirySchedule<string>(
    (item) => expired.push([item, Date.now() - start]),
    { now: Date.now, resolutionMs: 20 },
  );
  // added out of order; "b" and "b2" share a bucket
  schedule.add("c", start + 150);
  schedule.add("b", start + 81);
  schedule.add("a", start + 30);
  schedule.add("b2", start + 85);
  await sleep(260);
  assert.deepEqual(expired.map(([item]) => item), ["a", "b", "b2", "c"]);
  for (const [item, at] of expired) {
    const due = { a: 30, b: 81, b2: 85, c: 150 }[item]!;
    assert.ok(at >= due, `${item} expired at ${at} ms, due at ${due}`);
  }
});

Deno.test("createExpirySchedule() forgets a deleted item, and holds no timer once empty", async () => {
  const expired: string[] = [];
  const start = Date.now();
  const schedule = createExpirySchedule<string>((item) => expired.push(item), {
    now: Date.now,
    resolutionMs: 20,
  });
  schedule.add("kept", start + 40);
  schedule.add("gone", start + 40);
  schedule.add("alone", start + 100);
  schedule.delete("gone", start + 40);
  schedule.delete("alone", start + 100);
  // deleting what is not there changes nothing
  schedule.delete("never added", start + 40);
  schedule.delete("kept", start + 100);
  await sleep(140);
  assert.deepEqual(expired, ["kept"]);
  // a timer left set would fail this test: Deno's sanitizer reports it as a leak
  schedule.add("late", start + 60_000);
  schedule.delete("late", start + 60_000);
});

Deno.test("createExpirySchedule() lets an item leave the schedule as it expires", async () => {
  const start = Date.now();
  const expired: string[] = [];
  const schedule = createExpirySchedule<string>((item) => {
    expired.push(item);
    schedule.delete(item, start + 20);
  }, { now: Date.now, resolutionMs: 20 });
  schedule.add("first", start + 20);
  schedule.add("second", start + 20);
  await sleep(80);
  assert.deepEqual(expired, ["first", "second"]);
});

Deno.test("createExpirySchedule() expires at once what is already due, and waits in steps past setTimeout's limit", async () => {
  const expired: string[] = [];
  const start = Date.now();
  const schedule = createExpirySchedule<string>((item) => expired.push(item), {
    now: Date.now,
  });
  schedule.add("past", start - 5_000);
  schedule.add("far", start + 2 ** 33);
  await sleep(20);
  assert.deepEqual(expired, ["past"]);
  schedule.delete("far", start + 2 ** 33);
});
