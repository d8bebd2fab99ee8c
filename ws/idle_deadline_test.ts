import assert from "node:assert/strict";
import { failWhenIdle } from "./idle_deadline.ts";

Deno.test("a body that goes silent fails after the idle time; one that keeps coming passes whole", async () => {
  let feed!: ReadableStreamDefaultController<Uint8Array>;
  let cancelled: unknown;
  const silent = new ReadableStream<Uint8Array>({
    start: (controller) => void (feed = controller),
    cancel: (reason) => void (cancelled = reason),
  });
  const reader = failWhenIdle(silent, 50, () => new Error("stalled")).getReader();
  feed.enqueue(new Uint8Array([1]));
  assert.deepEqual((await reader.read()).value, new Uint8Array([1]));
  await assert.rejects(reader.read(), /stalled/);
  assert.match(String(cancelled), /stalled/, "the body underneath is cancelled");

  const whole = failWhenIdle(
    ReadableStream.from([new Uint8Array([1]), new Uint8Array([2, 3])]),
    50,
    () => new Error("stalled"),
  );
  const pieces = await Array.fromAsync(whole);
  assert.deepEqual(pieces, [new Uint8Array([1]), new Uint8Array([2, 3])]);
});
