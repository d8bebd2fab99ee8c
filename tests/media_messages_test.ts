import assert from "node:assert/strict";
import {
  fetchMedia,
  fixture,
  FIXTURES,
  natsBucket,
  paddedFixture,
  sha256Hex,
  stored,
} from "./support/media.ts";
import { concat, id3Tag, mp3WithTagEndingAt } from "./support/id3.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { joinChat, refused } from "./support/steps.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

// send_message with image/audio/video as base64 over a real socket, fetched back over HTTP.

const MIME: Record<string, string> = {
  "image.png": "image/png",
  "image.jpg": "image/jpeg",
  "image.gif": "image/gif",
  "image.webp": "image/webp",
  "audio.mp3": "audio/mpeg",
  "audio.ogg": "audio/ogg",
  "audio.wav": "audio/wav",
  "audio.m4a": "audio/x-m4a",
  "audio.webm": "video/webm",
  "video.mp4": "video/mp4",
  "video.webm": "video/webm",
  "video.mov": "video/quicktime",
};

async function sendMedia(
  socket: TestSocket,
  kind: string,
  bytes: Uint8Array | string,
  extra: Frame = {},
): Promise<Frame> {
  return await socket.request({
    action: "send_message",
    receiver_id: "acme",
    media_type: kind,
    [kind]: typeof bytes === "string" ? bytes : bytes.toBase64(),
    ...extra,
  });
}

async function chatOf(cluster: TestCluster) {
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const alice = await joinChat(cluster, "alice", chat.id);
  const vendor = await joinChat(cluster, "acme", chat.id);
  return { chat, alice, vendor };
}

Deno.test("every accepted image, audio and video container is sent as base64 and fetched back byte for byte", async () => {
  await using cluster = await startCluster({ nats: false });
  const { alice, vendor } = await chatOf(cluster);
  for (const [kind, names] of Object.entries(FIXTURES)) {
    for (const name of names) {
      const bytes = await fixture(name);
      const ack = await sendMedia(alice, kind, bytes);
      assert.equal(ack.type, "ack", `${name}: ${JSON.stringify(ack)}`);
      const message = ack.message;
      assert.equal(message.media_type, kind);
      assert.equal(message.content, null);
      assert.match(message.media_url, /^\/v1\/media\/[0-9a-f-]{36}$/);
      assert.ok(!JSON.stringify(ack).includes(bytes.toBase64()), "the frame carries no base64");
      const received = await vendor.nextOfType("chat_message");
      assert.deepEqual(received.message, message);
      const { response, body } = await fetchMedia(cluster, "acme", message.media_url);
      assert.equal(response.status, 200, name);
      assert.equal(response.headers.get("content-type"), MIME[name], name);
      assert.deepEqual(body, bytes, name);
    }
  }
});

Deno.test("a data: URL prefix is accepted and the type it claims is ignored for the detected one", async () => {
  await using cluster = await startCluster({ nats: false });
  const { alice } = await chatOf(cluster);
  const png = await fixture("image.png");
  const ack = await sendMedia(alice, "image", `data:text/html;base64,${png.toBase64()}`);
  assert.equal(ack.type, "ack", JSON.stringify(ack));
  const { response, body } = await fetchMedia(cluster, "alice", ack.message.media_url);
  assert.equal(response.headers.get("content-type"), "image/png");
  assert.deepEqual(body, png);
});

Deno.test("text called an image and a PNG called a video are unsupported_media, and nothing is stored", async () => {
  await using cluster = await startCluster({ nats: false });
  const { alice } = await chatOf(cluster);
  const text = new TextEncoder().encode("<html><script>alert(1)</script></html>".repeat(200));
  await refused(alice, sendFrame("image", text), "unsupported_media");
  await refused(alice, sendFrame("video", await fixture("image.png")), "unsupported_media");
  await refused(alice, sendFrame("audio", await fixture("video.mov")), "unsupported_media");
  await refused(alice, sendFrame("image", new Uint8Array([0x89, 0x50])), "unsupported_media");
  assert.deepEqual(await stored(cluster), { blobs: 0, chunks: 0, uploads: 0 });
});

Deno.test("an MP3 whose ID3v2 tag ends at the edge of the first 4100 bytes is sent and fetched back; junk behind a tag is unsupported_media", async () => {
  await using cluster = await startCluster({ nats: false });
  const { alice } = await chatOf(cluster);
  for (const end of [4_099, 4_100]) {
    const mp3 = await mp3WithTagEndingAt(end);
    const ack = await sendMedia(alice, "audio", mp3);
    assert.equal(ack.type, "ack", `tag ending at ${end}: ${JSON.stringify(ack)}`);
    const { response, body } = await fetchMedia(cluster, "alice", ack.message.media_url);
    assert.equal(response.headers.get("content-type"), "audio/mpeg");
    assert.deepEqual(body, mp3);
  }
  const junk = concat(id3Tag(50_000), new TextEncoder().encode("not audio ".repeat(500)));
  await refused(alice, sendFrame("audio", junk), "unsupported_media");
  assert.deepEqual(await stored(cluster), { blobs: 2, chunks: 2, uploads: 2 });
});

function sendFrame(kind: string, bytes: Uint8Array | string): Frame {
  return {
    action: "send_message",
    receiver_id: "acme",
    media_type: kind,
    [kind]: typeof bytes === "string" ? bytes : bytes.toBase64(),
  };
}

Deno.test("broken base64 is invalid_payload naming the field", async () => {
  await using cluster = await startCluster({ nats: false });
  const { alice } = await chatOf(cluster);
  const png = (await fixture("image.png")).toBase64();
  for (const broken of [`${png.slice(0, 40)}$${png.slice(41)}`, "abcde", "data:image/png,abcd"]) {
    const error = await refused(alice, sendFrame("image", broken), "invalid_payload");
    assert.deepEqual(error.issues, [{ path: "image", message: "not valid base64" }], broken);
  }
  assert.deepEqual(await stored(cluster), { blobs: 0, chunks: 0, uploads: 0 });
});

Deno.test("files just under and at the configured limit are accepted, one byte over is payload_too_large", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { MEDIA_MAX_IMAGE_BYTES: "5000", MEDIA_MAX_AUDIO_BYTES: "6000" },
  });
  const { alice } = await chatOf(cluster);
  for (const size of [4999, 5000]) {
    const ack = await sendMedia(alice, "image", await paddedFixture("image.png", size));
    assert.equal(ack.type, "ack", JSON.stringify(ack));
  }
  const over = sendFrame("image", await paddedFixture("image.png", 5001));
  await refused(alice, over, "payload_too_large");
  // each kind has its own limit
  const audio = await sendMedia(alice, "audio", await paddedFixture("audio.mp3", 6000));
  assert.equal(audio.type, "ack", JSON.stringify(audio));
  await refused(
    alice,
    sendFrame("audio", await paddedFixture("audio.mp3", 6001)),
    "payload_too_large",
  );
  assert.deepEqual(await stored(cluster), { blobs: 3, chunks: 3, uploads: 3 });
});

Deno.test("a video of exactly the default 25 MiB fits one frame; a byte more is payload_too_large", async () => {
  await using cluster = await startCluster({ nats: false });
  const { alice, vendor } = await chatOf(cluster);
  const video = await paddedFixture("video.mp4", 25 * 1024 * 1024);
  const ack = await sendMedia(alice, "video", video);
  assert.equal(ack.type, "ack", JSON.stringify(ack).slice(0, 300));
  const { response, body } = await fetchMedia(cluster, "acme", ack.message.media_url);
  assert.equal(response.headers.get("content-length"), String(video.length));
  assert.equal(sha256Hex(body), sha256Hex(video));
  await vendor.nextOfType("chat_message");
  const over = await paddedFixture("video.mp4", 25 * 1024 * 1024 + 1);
  await refused(alice, sendFrame("video", over), "payload_too_large");
});

Deno.test("a frame over the maximum closes the socket with 1009 and stores nothing", async () => {
  await using cluster = await startCluster({ nats: false, env: { MAX_FRAME_BYTES: "4096" } });
  const { alice } = await chatOf(cluster);
  alice.send(sendFrame("image", await paddedFixture("image.png", 4000)));
  assert.equal((await alice.closed).code, 1009);
  assert.deepEqual(await stored(cluster), { blobs: 0, chunks: 0, uploads: 0 });
});

Deno.test("the same file sent twice is stored once, as two messages with their own media ids", async () => {
  await using cluster = await startCluster({ nats: false });
  const { alice } = await chatOf(cluster);
  const video = await fixture("video.webm");
  const first = await sendMedia(alice, "video", video);
  const second = await sendMedia(alice, "video", `data:video/webm;base64,${video.toBase64()}`);
  assert.equal(first.type, "ack");
  assert.equal(second.type, "ack");
  assert.notEqual(first.message.media_url, second.message.media_url);
  assert.deepEqual(await stored(cluster), { blobs: 1, chunks: 1, uploads: 2 });
});

Deno.test("with MEDIA_BACKEND=nats media is kept in the object store, once, and served the same", async () => {
  await using bucket = natsBucket();
  await using cluster = await startCluster({
    env: { MEDIA_BACKEND: "nats", MEDIA_NATS_BUCKET: bucket.name },
  });
  const { alice, vendor } = await chatOf(cluster);
  const audio = await fixture("audio.ogg");
  const first = await sendMedia(alice, "audio", audio);
  const second = await sendMedia(alice, "audio", audio);
  assert.equal(first.type, "ack", JSON.stringify(first));
  assert.equal(second.type, "ack", JSON.stringify(second));
  await vendor.nextOfType("chat_message");
  const { response, body } = await fetchMedia(cluster, "acme", first.message.media_url);
  assert.equal(response.headers.get("content-type"), "audio/ogg");
  assert.deepEqual(body, audio);
  // the catalogue has the file once, the bucket holds it once, PostgreSQL none of its bytes
  assert.deepEqual(await stored(cluster), { blobs: 1, chunks: 0, uploads: 2 });
  assert.deepEqual(await bucket.objects(), [sha256Hex(audio)]);
});
