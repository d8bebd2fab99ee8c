/**
 * Uploads meet every rolling deploy. Deno's server shutdown breaks the body of a request still
 * coming in (reading it fails) while it lets responses finish, so the HTTP plane must hold its
 * shutdown for the uploads under way, and turn away new ones with a 503 that says to try again.
 */
import assert from "node:assert/strict";
import { paddedFixture, rawUpload, stored, untilOpen } from "./support/media.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { within } from "./support/wait.ts";

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array) {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

/**
 * Asks for a new upload until the instance no longer takes one: the answer that refused it, or
 * null when the connection was refused or cut (the HTTP server had stopped).
 */
async function untilUploadsRefused(cluster: TestCluster): Promise<Response | null> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    let response: Response;
    try {
      response = await fetch(`${cluster.main.httpUrl}/v1/media`, { method: "POST" });
    } catch {
      return null;
    }
    await response.body?.cancel();
    if (response.status === 503) return response;
  }
  assert.fail("new uploads were still taken 10 s into the shutdown");
}

Deno.test("an upload under way when a shutdown begins is finished and answered 201; one begun after is refused 503 with Retry-After", async () => {
  await using cluster = await startCluster({ env: { SHUTDOWN_TIMEOUT: "10" } });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const bytes = await paddedFixture("video.mp4", 2 * 1024 * 1024);
  using upload = await rawUpload(cluster, chat.id, bytes.length);
  const half = bytes.length / 2;
  await writeAll(upload.conn, bytes.subarray(0, half));
  await untilOpen(cluster, "upload", 1);

  const closing = cluster.main.service.close();
  const refusal = await untilUploadsRefused(cluster);
  await writeAll(upload.conn, bytes.subarray(half));
  assert.match(await upload.answer(), /^HTTP\/1\.1 201 /);
  assert.equal(refusal?.status, 503, "a new upload is turned away, not cut");
  assert.equal(refusal.headers.get("retry-after"), "1");
  await within(closing, 10_000, "the shutdown");
  assert.equal((await stored(cluster)).uploads, 1);
});

Deno.test("an upload the shutdown's deadline cuts is answered 503, not 400, so that its client uploads it again", async () => {
  await using cluster = await startCluster({ env: { SHUTDOWN_TIMEOUT: "2" } });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const bytes = await paddedFixture("video.mp4", 2 * 1024 * 1024);
  using upload = await rawUpload(cluster, chat.id, bytes.length);
  // half the body, then nothing until the deadline (well within the idle limit)
  await writeAll(upload.conn, bytes.subarray(0, bytes.length / 2));
  await untilOpen(cluster, "upload", 1);

  const closing = cluster.main.service.close();
  const answer = await upload.answer();
  assert.match(answer, /^HTTP\/1\.1 503 /);
  assert.match(answer, /retry-after: 1/i);
  await within(closing, 5_000, "the shutdown");
  assert.deepEqual(await stored(cluster), { blobs: 0, chunks: 0, uploads: 0 });
});
