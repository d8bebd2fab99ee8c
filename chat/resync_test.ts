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

/** An in-process bus that hands payloads over only when told: a broker's round trip. */
function deferredBus() {
  const bus = createMemoryBus();
  const inFlight: Array<() => void> = [];
  return {
    bus: {
      ...bus,
      publish: (subject: string, payload: Uint8Array) =>
        void inFlight.push(() => bus.publish(subject, payload)),
    },
    handOver: () => inFlight.splice(0).forEach((publish) => publish()),
  };
}

Deno.test("an instance heeds its own resync request as it sends it, and not again when the bus hands it back", () => {
  const { bus, handOver } = deferredBus();
  const subjects = createSubjects("test");
  const heard = { sender: [] as number[], other: [] as number[] };
  const [sender, other] = (["sender", "other"] as const).map((name) => {
    const resync = createResyncRequests({ bus, subjects, followsChats: () => true }, {
      onRequest: (withinMs) => heard[name].push(withinMs),
      onError: (error) => {
        throw error;
      },
    });
    resync.heed();
    return resync;
  });
  let listened = 0;
  sender!.listen(() => listened++);
  sender!.request(5_000);
  // before any round trip
  assert.deepEqual(heard, { sender: [5_000], other: [] });
  assert.equal(listened, 1);
  handOver();
  assert.deepEqual(heard, { sender: [5_000], other: [5_000] });
  assert.equal(listened, 1);
  other!.request(7_000);
  handOver();
  assert.deepEqual(heard, { sender: [5_000, 7_000], other: [5_000, 7_000] });
  assert.equal(listened, 2);
});
