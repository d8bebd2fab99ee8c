import assert from "node:assert/strict";
import { abandonedUploadMs, startSweeps } from "./upload_sweep.ts";

Deno.test("an upload is dead after twice the longest the limits let one last", () => {
  // the defaults: a 25 MiB video at 2 KiB/s takes 12,800 s, after 30 s of grace
  const defaults = { largest: 25 * 1024 * 1024, idleMs: 30_000, minBytesPerSecond: 2048 };
  assert.equal(abandonedUploadMs(defaults), 2 * (30_000 + 12_800_000 + 15_000));
  // a slower rate allowed is a longer upload
  assert.ok(abandonedUploadMs({ ...defaults, minBytesPerSecond: 1024 }) > 4 * 12_800_000);
});

Deno.test("stop() aborts the signal of the sweep under way and resolves once it has ended", async () => {
  const { promise: begun, resolve: begin } = Promise.withResolvers<AbortSignal>();
  let ended = false;
  const sweeps = startSweeps(async (signal) => {
    begin(signal);
    // a long sweep: it ends only when told to stop
    await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    ended = true;
    return 0;
  }, { afterMs: 60_000, onSwept: () => {}, onError: (error) => assert.fail(String(error)) });
  const signal = await begun;
  assert.equal(signal.aborted, false);
  await sweeps.stop();
  assert.equal(signal.aborted, true);
  assert.ok(ended);
});
