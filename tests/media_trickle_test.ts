/**
 * Uploads sent one byte per chunk (tests/support/trickle_upload.ts): what the server holds stays
 * in proportion to the bytes. One test per file: the memory a test left for the collector
 * would hide the next one's growth.
 */
import { id3Tag } from "./support/id3.ts";
import { startCluster } from "./support/service.ts";
import { assertBounded, peakGrowth, trickleUpload } from "./support/trickle_upload.ts";

Deno.test("an upload sent one byte per chunk behind an ID3 tag does not make the server hold 64 KiB per byte", async () => {
  await using cluster = await startCluster({ nats: false });
  // the tag says it ends at ~1,000,000: inspect() holds everything until then
  const tag = id3Tag(1_000_000).subarray(0, 64);
  const base = Deno.memoryUsage();
  const conn = await trickleUpload(cluster, tag);
  try {
    assertBounded(await peakGrowth(base, 3_000));
  } finally {
    conn.close();
  }
});
