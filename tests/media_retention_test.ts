import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import postgres from "postgres";
import { fetchMedia, fixture, paddedFixture, stored, uploadMedia } from "./support/media.ts";
import { startCluster } from "./support/service.ts";
import { acked, joinChat, refused } from "./support/steps.ts";

// Media uploaded and never sent goes after MEDIA_UNSENT_RETENTION_HOURS, bytes and all.

Deno.test("an upload not sent within MEDIA_UNSENT_RETENTION_HOURS is deleted, bytes and all, and a sent one stays", async () => {
  // 1.8 s: swept every 0.9 s
  await using cluster = await startCluster({
    nats: false,
    env: { MEDIA_UNSENT_RETENTION_HOURS: "0.0005" },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id);
  const [png, jpg] = [await fixture("image.png"), await paddedFixture("image.jpg", 5_000)];
  const unsent = (await uploadMedia(cluster, "alice", { chat_id: chat.id }, png)).json;
  const sent = (await uploadMedia(cluster, "alice", { chat_id: chat.id }, jpg)).json;
  const send = (mediaId: string) => ({
    action: "send_message",
    receiver_id: "acme",
    media_type: "image",
    media_id: mediaId,
  });
  await acked(alice, send(sent.media_id));
  // a minute old: past the retention by far, whenever the next sweep comes. Not older: a sweep
  // looks at the rows created since the last sweep's cutoff, less a margin of minutes (MARGIN_MS
  // in media/unsent_media_sweep.ts), and the row was created after that cutoff: set back by hand
  // further (in service, a creation time never moves), it would be behind what was looked at
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql`update media set created_at = now() - interval '1 minute'`;
  } finally {
    await sql.end();
  }

  const deadline = Date.now() + 5_000;
  while ((await fetchMedia(cluster, "alice", unsent.media_url)).response.status !== 404) {
    if (Date.now() > deadline) assert.fail("the unsent upload was never deleted");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const refusal = await refused(alice, send(unsent.media_id), "not_found");
  assert.deepEqual(refusal.issues, [{ path: "media_id", message: "unknown" }]);
  // the unsent file's bytes are gone (the sweep deletes them a step after its media row, whose
  // deletion made the 404); the sent one's are served to both sides
  const kept = { blobs: 1, chunks: 1, uploads: 1 };
  const gone = Date.now() + 5_000;
  while (!isDeepStrictEqual(await stored(cluster), kept)) {
    if (Date.now() > gone) assert.deepEqual(await stored(cluster), kept);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  for (const user of ["alice", "acme"]) {
    const { response, body } = await fetchMedia(cluster, user, sent.media_url);
    assert.equal(response.status, 200);
    assert.deepEqual(body, jpg);
  }
});
