/**
 * The NATS media store (MEDIA_BACKEND=nats) losing NATS while files move, seen from outside the
 * service's process: what its clients get, and what it prints.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import assert from "node:assert/strict";
import { signDevToken } from "../auth/sign.ts";
import { configureLogging } from "../observability/log.ts";
import { freshDatabase } from "./support/database.ts";
import { natsBucket, paddedFixture, uploadMedia } from "./support/media.ts";
import { startCluster, TEST_NATS_URL } from "./support/service.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import { startNatsServer } from "./support/nats_server.ts";
import {
  createChatIn,
  metricsOf,
  sample,
  serviceEnvironment,
  serviceLines,
  startServiceProcess,
} from "./support/service_process.ts";

Deno.test("a download whose NATS goes away mid-body is cut short, its place given back, and nothing but JSON log lines is printed", async () => {
  await using database = await freshDatabase();
  const storeDir = await Deno.makeTempDir();
  try {
    await using nats = await startNatsServer(["-js", "-sd", storeDir]);
    const env: Record<string, string> = {
      ...serviceEnvironment({ databaseUrl: database.url, natsUrl: nats.url }),
      MEDIA_BACKEND: "nats",
      MEDIA_NATS_BUCKET: "media",
    };
    await using service = await startServiceProcess(env);
    const chatId = await createChatIn(database.url, "alice", "acme");
    const token = await signDevToken(env.JWT_SECRET!, "alice");
    const video = await paddedFixture("video.mp4", 3_000_000);
    const uploaded = await fetch(`${service.httpUrl}/v1/media?chat_id=${chatId}`, {
      method: "POST",
      body: video,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(uploaded.status, 201);
    const { media_url: mediaUrl } = await uploaded.json();

    const download = await fetch(`${service.httpUrl}${mediaUrl}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(download.status, 200);
    const reader = download.body!.getReader();
    let received = (await reader.read()).value!.length;
    // the store's next chunk read finds no NATS, and gives up after its request timeout
    await nats.stop();
    await assert.rejects(async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        received += value.length;
      }
    });
    assert.ok(received < video.length, `${received} of ${video.length} bytes came`);
    const open = `chat_media_open_requests{route="download",via="http"}`;
    const deadline = Date.now() + 10_000;
    while (sample(await metricsOf(service), open) !== 0) {
      if (Date.now() > deadline) assert.fail("the download kept its place");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // said once, as the store's unavailability it is, in the log
    const said = await service.waitForLog(
      (line) => line.message === "media download",
      "the cut download's log line",
    );
    assert.equal(said.level, "WARN");
    assert.equal(said.error.code, "unavailable");
    await nats.start();

    // a line that is not a JSON record (Deno printing the body's error, a stack trace) is
    // one a log collector cannot parse, and it bypasses LOG_LEVEL and the redaction of errors
    const printed = serviceLines(service.lines).filter((line) => !line.startsWith("{"));
    assert.deepEqual(printed, []);
  } finally {
    await Deno.remove(storeDir, { recursive: true });
  }
});

Deno.test("an upload NATS refuses (its bucket full) is answered 503 with Retry-After, logged as an error, and its request body is let go", async () => {
  const lines: string[] = [];
  const decoder = new TextDecoder();
  await using _logging = await configureLogging("warning", {
    write: (bytes) => lines.push(decoder.decode(bytes)),
  });
  await using bucket = natsBucket();
  await using cluster = await startCluster({
    env: { MEDIA_BACKEND: "nats", MEDIA_NATS_BUCKET: bucket.name },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const nc = await connect({ servers: TEST_NATS_URL });
  try {
    // the bucket's quota, reached: not one more byte is taken
    await (await jetstreamManager(nc)).streams.update(`OBJ_${bucket.name}`, { max_bytes: 1 });
  } finally {
    await nc.close();
  }
  const video = await paddedFixture("video.mp4", 300_000);
  const response = await uploadMedia(cluster, "alice", { chat_id: chat.id }, video);
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  assert.equal(response.json.code, "unavailable");
  // PostgreSQL's disk full is logged (internal); a full bucket must not fail in silence
  const said = lines.map((line) => JSON.parse(line)).filter((line) => line.level === "ERROR");
  assert.equal(said.length, 1, lines.join("\n"));
  assert.equal(said[0].message, "media upload to a full NATS bucket failed");
  assert.equal(said[0].error.message, "maximum bytes exceeded");
  // the test's resource sanitizer fails it if the server left the request's body open
});

Deno.test("an upload NATS fails before its first byte is read (NATS gone silent) is answered 503, and its request body is let go", async () => {
  await using bucket = natsBucket();
  await using proxy = startTcpProxy(TEST_NATS_URL);
  await using cluster = await startCluster({
    env: {
      NATS_URL: proxy.url,
      MEDIA_BACKEND: "nats",
      MEDIA_NATS_BUCKET: bucket.name,
    },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  // the store's first request (its look-up of the upload's name) is never answered
  proxy.stall("both");
  const video = await paddedFixture("video.mp4", 300_000);
  const response = await uploadMedia(cluster, "alice", { chat_id: chat.id }, video);
  assert.equal(response.status, 503);
  assert.equal(response.json.code, "unavailable");
  proxy.restore();
  // the test's resource sanitizer fails it if the server left the request's body open
});
