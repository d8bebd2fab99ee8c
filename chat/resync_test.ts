import assert from "node:assert/strict";
import { createMemoryBus } from "../bus/memory_bus.ts";
import { createSubjects } from "../bus/subjects.ts";
import { createResyncRequests, DEFAULT_RESYNC_WINDOW_MS, MAX_RESYNC_WINDOW_MS } from "./resync.ts";

/** Requests over an in-process bus, and the windows each instance was asked to read again. */
function resyncOverBus() {
  const bus = createMemoryBus();
  const subjects = createSubjects("test");
  const windows: number[] = [];
  const resync = createResyncRequests({ bus, subjects, followsChats: () => true }, {
    onRequest: (withinMs) => windows.push(withinMs),
    onError: (error) => {
      throw error;
    },
  });
  resync.heed();
  const publishRaw = (text: string) => bus.publish(subjects.resync, new TextEncoder().encode(text));
  return { resync, windows, publishRaw };
}

Deno.test("a resync request carries how long events may have been lost, in whole ms", () => {
  const { resync, windows } = resyncOverBus();
  resync.request(90_000.4);
  assert.deepEqual(windows, [90_001]);
});

Deno.test("a resync request that garbles its window asks for the default one", () => {
  const { windows, publishRaw } = resyncOverBus();
  publishRaw("{not json");
  publishRaw(JSON.stringify({ within_ms: -5 }));
  publishRaw(JSON.stringify({ within_ms: "1e12" }));
  assert.deepEqual(windows, Array(3).fill(DEFAULT_RESYNC_WINDOW_MS));
});

Deno.test("a resync request cannot ask for more than a day of amendments", () => {
  const { windows, publishRaw } = resyncOverBus();
  publishRaw(JSON.stringify({ within_ms: 1e12 }));
  publishRaw(JSON.stringify({ within_ms: MAX_RESYNC_WINDOW_MS - 1 }));
  assert.deepEqual(windows, [MAX_RESYNC_WINDOW_MS, MAX_RESYNC_WINDOW_MS - 1]);
});
