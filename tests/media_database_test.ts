import assert from "node:assert/strict";
import postgres from "postgres";
import { paddedFixture } from "./support/media.ts";
import { metric } from "./support/metrics.ts";
import { closeThroughDatabaseProxy, startCluster, type TestCluster } from "./support/service.ts";
import { joinChat } from "./support/steps.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import { within } from "./support/wait.ts";

// Uploads to the PostgreSQL media store share the chat store's pool: what an upload does with
// its connection must not break the queries around it, nor hang when the connection does.

/** A 2 MiB video (two COPY batches) of its own: no two uploads are the same file. */
async function video(size = 2 * 1024 * 1024): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = await paddedFixture("video.webm", size);
  bytes.set(crypto.getRandomValues(new Uint8Array(65_536)), 300_000);
  return bytes;
}

/** `POST /v1/media` of `body` as `userId`: the status, or how it failed. */
async function upload(cluster: TestCluster, userId: string, chatId: string, body: BodyInit) {
  try {
    const response = await fetch(`${cluster.main.httpUrl}/v1/media?chat_id=${chatId}`, {
      method: "POST",
      body,
      headers: { authorization: `Bearer ${await cluster.token(userId)}` },
      signal: AbortSignal.timeout(20_000),
    });
    await response.body?.cancel();
    return response.status;
  } catch (error) {
    return String(error);
  }
}

/** Waits, up to 10 s, until no upload is open on the instance. */
async function untilNoUploadOpen(cluster: TestCluster): Promise<void> {
  const series = 'chat_media_open_requests{route="upload",via="http"}';
  const deadline = Date.now() + 10_000;
  while (await metric(cluster, 0, series) !== 0) {
    if (Date.now() > deadline) assert.fail(`${series} never went back to 0`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("uploads that fill the database pool all succeed, and another user's chat actions go on being answered", async () => {
  // the tests' pool of 4 connections, every one wanted by an upload or a chat query; carol asks
  // as fast as she is answered, which the socket rate limit is not to stop
  await using cluster = await startCluster({
    nats: false,
    env: { WS_RATE_PER_SECOND: "100000", WS_RATE_BURST: "100000" },
  });
  const users = ["u1", "u2"];
  const chats = await Promise.all(
    users.map((user) => cluster.main.service.chat.createChat(user, "acme")),
  );
  const quiet = await cluster.main.service.chat.createChat("carol", "shop");
  await using carol = await joinChat(cluster, "carol", quiet.id);

  let uploading = true;
  const uploads = Promise.all(
    users.flatMap((user, index) =>
      Array.from({ length: 4 }, async () => upload(cluster, user, chats[index]!.id, await video()))
    ),
  ).finally(() => uploading = false);
  const replies: string[] = [];
  while (uploading) {
    const reply = await carol.request({ action: "load_latest_chat", limit: 10 }, 10_000);
    replies.push(reply.type === "ack" ? "ack" : `${reply.type}:${reply.code}`);
  }

  assert.deepEqual(await uploads, Array(8).fill(201));
  assert.ok(replies.length > 0);
  assert.deepEqual(replies.filter((reply) => reply !== "ack"), [], "every chat action acked");
  await untilNoUploadOpen(cluster);
});

Deno.test("an upload whose COPY is never answered is answered 503 in time and gives its place back", async () => {
  // After a lost connection postgres.js's `end()` waits for the shutdown deadline (a quirk of
  // the library under Deno's node:net); a short deadline keeps the test short.
  const cluster = await startCluster({
    instances: 0,
    nats: false,
    env: { SHUTDOWN_TIMEOUT: "1" },
  });
  await using proxy = startTcpProxy(cluster.databaseUrl);
  // closed before the proxy is cut: cut first, what the instance asks the store as it closes
  // (its sweeps) leaves postgres.js's reconnect timers behind the test
  await using _cluster = {
    [Symbol.asyncDispose]: () => closeThroughDatabaseProxy(cluster, proxy),
  };
  await cluster.startInstance({ DATABASE_URL: proxy.url });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using admin = databaseOf(cluster);

  // the first 1 MiB batch is written; the database's answer to the second one is held back
  const file = await video();
  const body = Promise.withResolvers<ReadableStreamDefaultController<Uint8Array>>();
  const answer = upload(cluster, "alice", chat.id, new ReadableStream({ start: body.resolve }));
  const sending = await body.promise;
  sending.enqueue(file.subarray(0, 1024 * 1024 + 1));
  await admin.untilUploadChunks(4);
  proxy.stall("downstream");
  sending.enqueue(file.subarray(1024 * 1024 + 1));
  sending.close();

  // STORE_TIMEOUT_MS for the batch, and a margin
  assert.equal(await within(answer, 8_000, "the upload's answer"), 503);
  await untilNoUploadOpen(cluster);

  // the connection of the COPY left unanswered is not given to anyone else
  proxy.restore();
  assert.equal(await upload(cluster, "alice", chat.id, await video()), 201);
  await admin.untilUploadChunks(0);
});

/** A connection of the test's own to the cluster's database (not through any proxy). */
function databaseOf(cluster: TestCluster) {
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  return {
    /** Waits, up to 10 s, until `count` chunks are stored under upload keys. */
    async untilUploadChunks(count: number): Promise<void> {
      const deadline = Date.now() + 10_000;
      while (true) {
        const [row] = await sql<Array<{ chunks: number }>>`
          select count(*)::int as chunks from media_chunks where blob_key like 'upload:%'`;
        if (row!.chunks === count) return;
        if (Date.now() > deadline) assert.fail(`${row!.chunks} chunks under upload keys`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    [Symbol.asyncDispose]: () => sql.end(),
  };
}
