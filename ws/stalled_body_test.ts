import assert from "node:assert/strict";
import { type BodyFailure, failWhenStalled } from "./stalled_body.ts";

const stalled = (reason: BodyFailure) => new Error(`stalled: ${reason}`);

/** A body that sends `pieces` pieces of `bytes` bytes, each `everyMs` after asked for. */
function trickle(pieces: number, bytes: number, everyMs: number): ReadableStream<Uint8Array> {
  let sent = 0;
  let wait: ReturnType<typeof setTimeout> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      await new Promise((resolve) => (wait = setTimeout(resolve, everyMs)));
      if (sent++ === pieces) return controller.close();
      controller.enqueue(new Uint8Array(bytes));
    },
    // cancelled as stalled while a piece is on its way: no timer outlives the test
    cancel: () => clearTimeout(wait),
  }, { highWaterMark: 0 }); // nothing is fetched ahead: each piece comes `everyMs` after asked for
}

Deno.test("a body that goes silent fails as idle after the idle time; one that keeps coming passes whole", async () => {
  let feed!: ReadableStreamDefaultController<Uint8Array>;
  let cancelled: unknown;
  const silent = new ReadableStream<Uint8Array>({
    start: (controller) => void (feed = controller),
    cancel: (reason) => void (cancelled = reason),
  });
  const limits = { idleMs: 50, minBytesPerSecond: 1 };
  const reader = failWhenStalled(silent, limits, stalled).getReader();
  feed.enqueue(new Uint8Array([1]));
  assert.deepEqual((await reader.read()).value, new Uint8Array([1]));
  await assert.rejects(reader.read(), /stalled: idle/);
  assert.match(String(cancelled), /stalled: idle/, "the body underneath is cancelled");

  const whole = failWhenStalled(
    ReadableStream.from([new Uint8Array([1]), new Uint8Array([2, 3])]),
    limits,
    stalled,
  );
  const pieces = await Array.fromAsync(whole);
  assert.deepEqual(pieces, [new Uint8Array([1]), new Uint8Array([2, 3])]);
});

Deno.test("a body that trickles, never silent for the idle time, fails as slow once it falls behind the minimum rate", async () => {
  // 1 byte every 20 ms is 50 bytes/s: behind 1,000 bytes/s once the 300 ms of grace are used
  const body = failWhenStalled(trickle(1_000, 1, 20), {
    idleMs: 300,
    minBytesPerSecond: 1_000,
  }, stalled);
  const startedAt = Date.now();
  await assert.rejects(Array.fromAsync(body), /stalled: slow/);
  const tookMs = Date.now() - startedAt;
  assert.ok(tookMs >= 300 && tookMs < 2_000, `ended after ${tookMs} ms`);
});

Deno.test("a body above the minimum rate passes whole, however long it takes", async () => {
  // 500 bytes every 20 ms is 25,000 bytes/s against 1,000: 40 pieces over the grace of 300 ms
  const body = failWhenStalled(trickle(40, 500, 20), {
    idleMs: 300,
    minBytesPerSecond: 1_000,
  }, stalled);
  const pieces = await Array.fromAsync(body);
  assert.equal(pieces.length, 40);
});

Deno.test("the time the reader takes between reads does not count against the body's rate", async () => {
  // each byte comes 5 ms after it is asked for; a reader that takes 30 ms a piece takes 350 ms
  // in all, more than the 100 ms of grace plus 10 ms per byte the body is allowed, while the
  // body itself was waited for 50 ms
  const reader = failWhenStalled(
    trickle(10, 1, 5),
    { idleMs: 100, minBytesPerSecond: 100 },
    stalled,
  )
    .getReader();
  let pieces = 0;
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
    pieces++;
    await new Promise((resolve) => setTimeout(resolve, 30)); // the reader's own work
  }
  assert.equal(pieces, 10);
});

Deno.test("a body whose reading fails (its connection gone mid-body) fails as broken", async () => {
  let feed!: ReadableStreamDefaultController<Uint8Array>;
  const cut = new ReadableStream<Uint8Array>({ start: (controller) => void (feed = controller) });
  const reader = failWhenStalled(cut, { idleMs: 10_000, minBytesPerSecond: 1 }, stalled)
    .getReader();
  feed.enqueue(new Uint8Array([1]));
  assert.deepEqual((await reader.read()).value, new Uint8Array([1]));
  feed.error(new Error("Cannot read request body as underlying resource unavailable"));
  await assert.rejects(reader.read(), /stalled: broken/);
});
