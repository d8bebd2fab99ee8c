import assert from "node:assert/strict";
import postgres from "postgres";
import { signDevToken } from "../auth/sign.ts";
import {
  chatWithImage,
  fetchMedia,
  fixture,
  metric,
  paddedFixture,
  rawUpload,
  stored,
  untilOpen,
  uploadMedia,
} from "./support/media.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { acked, joinChat, refused } from "./support/steps.ts";
import type { Frame } from "./support/ws_client.ts";
import { within } from "./support/wait.ts";

// Per-user limits of GET/HEAD/POST /v1/media over real HTTP: a token bucket shared by the
// routes and caps on open uploads and downloads, counted only for good tokens.

/** Requests of the route refused by the limit, from the instance's metrics. */
function refusals(cluster: TestCluster, route: string, limit: string, via = "http") {
  return metric(
    cluster,
    `chat_media_rate_limited_total{route="${route}",limit="${limit}",via="${via}"}`,
  );
}

/** alice's `send_message` of an image to acme, as base64. */
const sendImage = (image: Uint8Array) => ({
  action: "send_message",
  receiver_id: "acme",
  media_type: "image",
  image: image.toBase64(),
});

/** A 429 of the media routes: the routes' JSON error shape, with `Retry-After`. */
async function assertLimited(response: Response, retryAfter: string) {
  assert.equal(response.status, 429);
  assert.equal(response.headers.get("retry-after"), retryAfter);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const body = await response.json();
  assert.equal(body.code, "rate_limited");
  assert.equal(typeof body.message, "string");
}

/** A chat of alice's with acme, her socket in it (closed with the cluster), and her image. */
async function aliceSendingImages(cluster: TestCluster) {
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const alice = await joinChat(cluster, "alice", chat.id);
  return { chat, alice, png: await fixture("image.png") };
}

/** `POST /v1/media` whose body stops after a few bytes until `finish()`, or `abort()`. */
async function stalledUpload(cluster: TestCluster, userId: string, chatId: string) {
  const png = await fixture("image.png");
  let source!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      source = controller;
      controller.enqueue(png.subarray(0, 64));
    },
  });
  const aborter = new AbortController();
  const response = fetch(`${cluster.main.httpUrl}/v1/media?chat_id=${chatId}`, {
    method: "POST",
    body,
    headers: { authorization: `Bearer ${await cluster.token(userId)}` },
    signal: aborter.signal,
  });
  return {
    async finish(): Promise<number> {
      source.enqueue(png.subarray(64));
      source.close();
      const answer = await response;
      await answer.body?.cancel();
      return answer.status;
    },
    async abort(): Promise<void> {
      aborter.abort();
      await response.then((answer) => answer.body?.cancel(), () => {});
    },
  };
}

Deno.test("a user over the media request rate gets 429 with Retry-After while another user is still served", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { MEDIA_RATE_PER_SECOND: "0.001", MEDIA_RATE_BURST: "3" },
  });
  const { chat, mediaUrl } = await chatWithImage(cluster);
  for (let i = 0; i < 3; i++) {
    assert.equal((await fetchMedia(cluster, "acme", mediaUrl)).response.status, 200);
  }
  const token = await cluster.token("acme");
  const get = await fetch(`${cluster.main.httpUrl}${mediaUrl}?token=${token}`);
  // one token every 1000 s
  await assertLimited(get, "1000");
  const head = await fetchMedia(cluster, "acme", mediaUrl, { method: "HEAD" });
  assert.equal(head.response.status, 429);
  // uploads draw on the same budget
  const upload = await uploadMedia(
    cluster,
    "acme",
    { chat_id: chat.id },
    await fixture("image.png"),
  );
  assert.equal(upload.status, 429);
  assert.equal(upload.json.code, "rate_limited");
  const other = await fetchMedia(cluster, "alice", mediaUrl);
  assert.equal(other.response.status, 200);
  assert.deepEqual(other.body, await fixture("image.png"));
  assert.equal(await refusals(cluster, "download", "rate"), 2);
  assert.equal(await refusals(cluster, "upload", "rate"), 1);
});

Deno.test("a user with N uploads in flight gets 429 on the next, and is served again once one finishes or aborts", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { MEDIA_MAX_UPLOADS_PER_USER: "2" },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const png = await fixture("image.png");
  const upload = (userId: string) => uploadMedia(cluster, userId, { chat_id: chat.id }, png);
  const first = await stalledUpload(cluster, "alice", chat.id);
  const second = await stalledUpload(cluster, "alice", chat.id);
  await untilOpen(cluster, "upload", 2);
  const url = `${cluster.main.httpUrl}/v1/media?chat_id=${chat.id}`;
  await assertLimited(
    await fetch(url, {
      method: "POST",
      body: png,
      headers: { authorization: `Bearer ${await cluster.token("alice")}` },
    }),
    "1",
  );
  assert.equal((await upload("acme")).status, 201, "another user uploads meanwhile");

  assert.equal(await first.finish(), 201);
  // the finished upload's place is free by the time it is answered
  assert.equal((await upload("alice")).status, 201);
  const third = await stalledUpload(cluster, "alice", chat.id);
  await untilOpen(cluster, "upload", 2);
  assert.equal((await upload("alice")).status, 429);

  await second.abort();
  await untilOpen(cluster, "upload", 1);
  assert.equal((await upload("alice")).status, 201);
  assert.equal(await third.finish(), 201);
  await untilOpen(cluster, "upload", 0);
  assert.equal(await refusals(cluster, "upload", "concurrency"), 2);
});

/**
 * A video alice uploaded to her chat with acme, larger than what the sockets' buffers take in
 * (so that its body cannot all be sent unread); its URL with her token, and a HEAD of it.
 */
async function aliceVideo(cluster: TestCluster) {
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const video = await paddedFixture("video.mp4", 24 * 1024 * 1024);
  const { json } = await uploadMedia(
    cluster,
    "alice",
    { chat_id: chat.id, media_type: "video" },
    video,
  );
  const url = `${cluster.main.httpUrl}${json.media_url}?token=${await cluster.token("alice")}`;
  return { video, url, head: () => fetch(url, { method: "HEAD" }) };
}

Deno.test("a download is open until its body is sent or dropped, and over the cap it is 429", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { MEDIA_MAX_DOWNLOADS_PER_USER: "1" },
  });
  const { video, url, head } = await aliceVideo(cluster);
  const get = () => fetch(url);

  const unread = await get();
  assert.equal(unread.status, 200);
  await assertLimited(await get(), "1");
  assert.equal((await head()).status, 429);
  await unread.body?.cancel();
  await untilOpen(cluster, "download", 0);
  assert.equal((await head()).status, 200);

  const whole = await get();
  assert.equal((await whole.bytes()).length, video.length);
  await untilOpen(cluster, "download", 0);
  assert.equal((await head()).status, 200);
});

Deno.test("a download whose client takes nothing for MEDIA_DOWNLOAD_IDLE_SECONDS is cut and gives its place back", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { MEDIA_MAX_DOWNLOADS_PER_USER: "1", MEDIA_DOWNLOAD_IDLE_SECONDS: "1" },
  });
  const { video, url, head } = await aliceVideo(cluster);
  const { pathname, search } = new URL(url);
  // a client that asks and then reads nothing, its connection open (a paused player, a
  // vanished phone whose TCP the kernel keeps)
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: cluster.main.service.port });
  await conn.write(
    new TextEncoder().encode(`GET ${pathname}${search} HTTP/1.1\r\nHost: x\r\n\r\n`),
  );
  await untilOpen(cluster, "download", 1);
  assert.equal((await head()).status, 429);

  // Cut, but the connection is not over: the server cannot end it while the client takes
  // nothing (what is left of the answer waits for the client's window, a closed one for as long
  // as the client likes). The place stays taken as long, or one user could hold connections
  // (a descriptor and megabytes of socket buffer each) without bound, a place a minute.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  assert.equal(
    await metric(cluster, `chat_media_open_requests{route="download",via="http"}`),
    1,
    "a place given back while its connection still holds what it took",
  );
  assert.equal((await head()).status, 429);
  // the connection was ended before the file was all sent: the client sees it cut short
  let received = 0;
  const buffer = new Uint8Array(1024 * 1024);
  try {
    for (;;) {
      const read = await within(conn.read(buffer), 10_000, "the cut download's end");
      if (read === null) break;
      received += read;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  }
  assert.ok(received < video.length, `${received} bytes of ${video.length} came`);
  // once it is over, the place is given back
  await untilOpen(cluster, "download", 0);
  assert.equal((await head()).status, 200);
});

Deno.test("requests with a bad token get 401 and spend nothing of the user's media budget", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { MEDIA_RATE_PER_SECOND: "0.001", MEDIA_RATE_BURST: "2" },
  });
  const { chat, mediaUrl } = await chatWithImage(cluster);
  const bad = {
    "signed with another secret": await signDevToken(
      `${crypto.randomUUID()}${crypto.randomUUID()}`,
      "alice",
    ),
    "expired": await cluster.token("alice", -60),
    "not a token": "alice",
  };
  const png = await fixture("image.png");
  for (const [name, token] of Object.entries(bad)) {
    for (let i = 0; i < 3; i++) {
      const headers = { authorization: `Bearer ${token}` };
      const get = await fetch(`${cluster.main.httpUrl}${mediaUrl}`, { headers });
      assert.equal(get.status, 401, `GET, ${name}`);
      assert.equal(get.headers.get("www-authenticate"), "Bearer");
      assert.equal((await get.json()).code, "unauthorized");
      const post = await fetch(`${cluster.main.httpUrl}/v1/media?chat_id=${chat.id}`, {
        method: "POST",
        body: png,
        headers,
      });
      assert.equal(post.status, 401, `POST, ${name}`);
      await post.body?.cancel();
    }
  }
  const anonymous = await fetch(`${cluster.main.httpUrl}${mediaUrl}`);
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
  // alice's whole burst is still there, and it is a real limit
  assert.equal((await fetchMedia(cluster, "alice", mediaUrl)).response.status, 200);
  assert.equal((await uploadMedia(cluster, "alice", { chat_id: chat.id }, png)).status, 201);
  assert.equal((await fetchMedia(cluster, "alice", mediaUrl)).response.status, 429);
});

Deno.test("an upload that sends nothing for MEDIA_UPLOAD_IDLE_SECONDS is ended with 400 and gives its place back", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { MEDIA_MAX_UPLOADS_PER_USER: "1", MEDIA_UPLOAD_IDLE_SECONDS: "0.5" },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const png = await fixture("image.png");
  // a client that vanished without closing its connection: it sends no more, and never ends
  using upload = await rawUpload(cluster, chat.id, png.length);
  await upload.conn.write(png.subarray(0, 64));
  await untilOpen(cluster, "upload", 1);
  assert.equal((await uploadMedia(cluster, "alice", { chat_id: chat.id }, png)).status, 429);

  // the server gives up on it, and answers (to no one, in life)
  assert.match(await upload.answer(), /^HTTP\/1\.1 400 [^]*sent nothing for 0\.5 s/);
  await untilOpen(cluster, "upload", 0);
  assert.equal((await uploadMedia(cluster, "alice", { chat_id: chat.id }, png)).status, 201);
});

Deno.test("an upload slower than MEDIA_UPLOAD_MIN_BYTES_PER_SECOND, though never idle, is ended with 400 and gives its place back", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: {
      MEDIA_MAX_UPLOADS_PER_USER: "1",
      MEDIA_UPLOAD_IDLE_SECONDS: "0.5",
      MEDIA_UPLOAD_MIN_BYTES_PER_SECOND: "10000",
    },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const png = await fixture("image.png");
  // 64 KiB: at 16 bytes every 100 ms, never silent for the idle time, it would take 7 minutes
  const large = await paddedFixture("image.png", 64 * 1024);
  using upload = await rawUpload(cluster, chat.id, large.length);
  const trickling = (async () => {
    for (let at = 0; at < large.length; at += 16) {
      await upload.conn.write(large.subarray(at, at + 16));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })().catch(() => {}); // the server ends the connection under it
  await untilOpen(cluster, "upload", 1);
  assert.match(await upload.answer(), /^HTTP\/1\.1 400 [^]*slower than 10000 bytes\/s/);
  upload.conn.close();
  await trickling;
  await untilOpen(cluster, "upload", 0);
  assert.equal((await uploadMedia(cluster, "alice", { chat_id: chat.id }, png)).status, 201);
});

Deno.test("base64 media sent over a socket counts as an open upload: past the cap it is refused with rate_limited, stores nothing, and gives its place back", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { MEDIA_MAX_UPLOADS_PER_USER: "1" },
  });
  const { chat, alice, png } = await aliceSendingImages(cluster);
  const held = await stalledUpload(cluster, "alice", chat.id);
  await untilOpen(cluster, "upload", 1);
  const before = await stored(cluster);
  await refused(alice, sendImage(png), "rate_limited");
  assert.deepEqual(await stored(cluster), before, "nothing of the refused image is stored");

  assert.equal(await held.finish(), 201);
  // a failed ingest gives its place back too
  await refused(alice, sendImage(new Uint8Array(64)), "unsupported_media");
  const sent = await acked(alice, sendImage(png));
  assert.equal(sent.message.seq, 1, "the refused sends made no message");
  // and one that was stored: the HTTP route has the place again
  assert.equal((await uploadMedia(cluster, "alice", { chat_id: chat.id }, png)).status, 201);
});

Deno.test("a base64 retry of a stored client_id is acked with the stored message while the user's uploads are at the cap, storing nothing", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { MEDIA_MAX_UPLOADS_PER_USER: "1" },
  });
  const { chat, alice, png } = await aliceSendingImages(cluster);
  const send = { ...sendImage(png), client_id: "photo-1" };
  const first = (await acked(alice, send)).message;
  const held = await stalledUpload(cluster, "alice", chat.id);
  await untilOpen(cluster, "upload", 1);
  const before = await stored(cluster);

  // its first ack was lost: the retry learns it was stored, not that it must wait for a place
  const retried = (await acked(alice, send)).message;
  assert.deepEqual(retried, first);
  assert.deepEqual(await stored(cluster), before, "the retry's file is not stored again");
  assert.equal(await refusals(cluster, "upload", "concurrency", "socket"), 0);
  // a new file is still refused past the cap
  await refused(alice, { ...sendImage(png), client_id: "photo-2" }, "rate_limited");
  assert.equal(await held.finish(), 201);
});

Deno.test("base64 media over a socket is in the media metrics under via=socket: open while it is stored, and refused past the cap", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { MEDIA_MAX_UPLOADS_PER_USER: "1" },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id);
  // a socket answers its frames in order: the send refused comes from another one of hers
  await using phone = await joinChat(cluster, "alice", chat.id);
  const png = await fixture("image.png");
  // a migration, say, holds the media table: the first send is stored only once it lets go
  const observer = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  const locker = await observer.reserve();
  let first: Promise<Frame>;
  try {
    await locker`begin`;
    await locker`lock table media in access exclusive mode`;
    first = alice.request(sendImage(png), 15_000);
    // awaited below; a failure on the way is not left unhandled
    first.catch(() => {});
    await untilOpen(cluster, "upload", 1, "socket");
    assert.equal(await metric(cluster, 'chat_media_open_requests{route="upload",via="http"}'), 0);
    await refused(phone, sendImage(png), "rate_limited");
    assert.equal(await refusals(cluster, "upload", "concurrency", "socket"), 1);
    assert.equal(await refusals(cluster, "upload", "concurrency", "http"), 0);
  } finally {
    await locker`rollback`;
    locker.release();
    await observer.end();
  }
  assert.equal((await first).type, "ack");
  await untilOpen(cluster, "upload", 0, "socket");
});
