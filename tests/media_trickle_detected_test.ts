/** An upload of a known type sent one byte per chunk: see tests/media_trickle_test.ts. */
import { fixture } from "./support/media.ts";
import { startCluster } from "./support/service.ts";
import { assertBounded, peakGrowth, trickleUpload } from "./support/trickle_upload.ts";

Deno.test("an upload of a known type sent one byte per chunk does not make the server hold 64 KiB per byte", async () => {
  await using cluster = await startCluster({ nats: false });
  const mp3 = await fixture("audio.mp3");
  const base = Deno.memoryUsage();
  const conn = await trickleUpload(cluster, mp3.subarray(0, 8_192));
  try {
    assertBounded(await peakGrowth(base, 3_000));
  } finally {
    conn.close();
  }
});
