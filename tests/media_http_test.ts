import assert from "node:assert/strict";
import {
  fetchMedia,
  fixture,
  natsBucket,
  paddedFixture,
  sha256Hex,
  stored,
  uploadMedia,
} from "./support/media.ts";
import { concat, mp3WithTagEndingAt } from "./support/id3.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { acked, joinChat, messageWithSeq, refused } from "./support/steps.ts";
import type { Frame } from "./support/ws_client.ts";

// GET /v1/media/{id} and POST /v1/media over real HTTP, with messages over real sockets.

async function chatWithVideo(cluster: TestCluster, video: Uint8Array) {
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const alice = await joinChat(cluster, "alice", chat.id);
  const ack = await acked(alice, {
    action: "send_message",
    receiver_id: "acme",
    media_type: "video",
    video: video.toBase64(),
  });
  return { chat, alice, message: ack.message as Frame };
}

Deno.test("GET /v1/media/{id} streams the file with its detected type and safe headers", async () => {
  await using cluster = await startCluster({ nats: false });
  const video = await fixture("video.mp4");
  const { message } = await chatWithVideo(cluster, video);
  const { response, body } = await fetchMedia(cluster, "acme", message.media_url);
  assert.equal(response.status, 200);
  assert.deepEqual(body, video);
  assert.equal(response.headers.get("content-type"), "video/mp4");
  assert.equal(response.headers.get("content-length"), String(video.length));
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  // opened as a page, it may run and load nothing, and is its own unique origin
  assert.equal(response.headers.get("content-security-policy"), "default-src 'none'; sandbox");
  assert.match(response.headers.get("cache-control") ?? "", /^private\b/);
  assert.equal(response.headers.get("etag"), `"${sha256Hex(video)}"`);
  assert.equal(response.headers.get("accept-ranges"), "bytes");
  // the token may also come in the query, as for sockets (for <video src>)
  const token = await cluster.token("alice");
  const viaQuery = await fetch(`${cluster.main.httpUrl}${message.media_url}?token=${token}`);
  assert.equal(viaQuery.status, 200);
  assert.deepEqual(await viaQuery.bytes(), video);
});

Deno.test("If-None-Match with the ETag is 304 without a body", async () => {
  await using cluster = await startCluster({ nats: false });
  const { message } = await chatWithVideo(cluster, await fixture("video.webm"));
  const first = await fetchMedia(cluster, "acme", message.media_url);
  const etag = first.response.headers.get("etag")!;
  const again = await fetchMedia(cluster, "acme", message.media_url, {
    headers: { "if-none-match": `W/"other", ${etag}` },
  });
  assert.equal(again.response.status, 304);
  assert.equal(again.body.length, 0);
  assert.equal(again.response.headers.get("etag"), etag);
  const changed = await fetchMedia(cluster, "acme", message.media_url, {
    headers: { "if-none-match": `"something-else"` },
  });
  assert.equal(changed.response.status, 200);
});

Deno.test("Range requests get 206 with the bytes asked for, across chunk boundaries, or 416", async () => {
  await using cluster = await startCluster({ nats: false });
  // a megabyte spans several 256 KiB chunks of the PostgreSQL store
  const video = await paddedFixture("video.mp4", 1024 * 1024);
  video.set(crypto.getRandomValues(new Uint8Array(60_000)), 200_000);
  const { message } = await chatWithVideo(cluster, video);
  const size = video.length;
  const cases: Array<[string, number, number]> = [
    ["bytes=0-99", 0, 99],
    ["bytes=200000-600000", 200_000, 600_000],
    ["bytes=262143-262144", 262_143, 262_144],
    ["bytes=1000000-", 1_000_000, size - 1],
    ["bytes=-500", size - 500, size - 1],
    ["bytes=1048000-9999999", 1_048_000, size - 1],
  ];
  for (const [range, start, end] of cases) {
    const { response, body } = await fetchMedia(cluster, "acme", message.media_url, {
      headers: { range },
    });
    assert.equal(response.status, 206, range);
    assert.equal(response.headers.get("content-range"), `bytes ${start}-${end}/${size}`, range);
    assert.equal(response.headers.get("content-length"), String(end - start + 1), range);
    assert.deepEqual(body, video.subarray(start, end + 1), range);
  }
  const past = await fetchMedia(cluster, "acme", message.media_url, {
    headers: { range: `bytes=${size}-` },
  });
  assert.equal(past.response.status, 416);
  assert.equal(past.response.headers.get("content-range"), `bytes */${size}`);
  // no body, so no type: the file's would describe bytes the answer does not hold
  assert.equal(past.response.headers.get("content-type"), null);
  assert.equal(past.body.length, 0);
  // a stale If-Range gets the whole file
  const stale = await fetchMedia(cluster, "acme", message.media_url, {
    headers: { range: "bytes=0-9", "if-range": `"not-the-etag"` },
  });
  assert.equal(stale.response.status, 200);
  assert.equal(stale.body.length, size);
});

Deno.test("HEAD answers the headers of GET without the body", async () => {
  await using cluster = await startCluster({ nats: false });
  const video = await fixture("video.mov");
  const { message } = await chatWithVideo(cluster, video);
  const { response, body } = await fetchMedia(cluster, "acme", message.media_url, {
    method: "HEAD",
  });
  assert.equal(response.status, 200);
  assert.equal(body.length, 0);
  assert.equal(response.headers.get("content-type"), "video/quicktime");
  assert.equal(response.headers.get("content-length"), String(video.length));
});

Deno.test("a non-participant, an unknown id and a malformed id get 404; no token gets 401", async () => {
  await using cluster = await startCluster({ nats: false });
  const { message } = await chatWithVideo(cluster, await fixture("video.mp4"));
  // mallory is a participant of another chat of the same vendor
  await cluster.main.service.chat.createChat("mallory", "acme");
  assert.equal((await fetchMedia(cluster, "mallory", message.media_url)).response.status, 404);
  const unknown = `/v1/media/${crypto.randomUUID()}`;
  assert.equal((await fetchMedia(cluster, "alice", unknown)).response.status, 404);
  assert.equal((await fetchMedia(cluster, "alice", "/v1/media/not-a-uuid")).response.status, 404);
  const anonymous = await fetchMedia(cluster, null, message.media_url);
  assert.equal(anonymous.response.status, 401);
  assert.equal(anonymous.response.headers.get("www-authenticate"), "Bearer");
  const expired = await fetch(`${cluster.main.httpUrl}${message.media_url}`, {
    headers: { authorization: `Bearer ${await cluster.token("alice", -60)}` },
  });
  assert.equal(expired.status, 401);
  await expired.body?.cancel();
  // a vendor member acts for the vendor and may see it
  await cluster.main.service.chat.addVendorMember("acme", "agent-1", "agent");
  assert.equal((await fetchMedia(cluster, "agent-1", message.media_url)).response.status, 200);
});

Deno.test("a refused media request is stored by no cache: a 404 for one user now may be a 200 later", async () => {
  await using cluster = await startCluster({ nats: false });
  const { message } = await chatWithVideo(cluster, await fixture("video.mp4"));
  // not yet an agent of the vendor: 404, for now; a cache keeping it (a CDN keys on the URL,
  // ?token= and all) would answer it still once agent-1 may see the file
  const token = await cluster.token("agent-1");
  const url = `${cluster.main.httpUrl}${message.media_url}?token=${token}`;
  const before = await fetch(url);
  await before.body?.cancel();
  assert.equal(before.status, 404);
  assert.equal(before.headers.get("cache-control"), "no-store");
  await cluster.main.service.chat.addVendorMember("acme", "agent-1", "agent");
  const after = await fetch(url);
  await after.body?.cancel();
  assert.equal(after.status, 200);
  const anonymous = await fetchMedia(cluster, null, message.media_url);
  assert.equal(anonymous.response.status, 401);
  assert.equal(anonymous.response.headers.get("cache-control"), "no-store");
});

Deno.test("a media id spelled in upper case or with percent-escapes is the same media, as on the socket paths", async () => {
  await using cluster = await startCluster({ nats: false });
  const { message } = await chatWithVideo(cluster, await fixture("video.mp4"));
  const expected = (await fetchMedia(cluster, "acme", message.media_url)).body;
  const id = String(message.media_url).slice("/v1/media/".length);
  for (const spelling of [id.toUpperCase(), id.replaceAll("-", "%2D")]) {
    const { response, body } = await fetchMedia(cluster, "acme", `/v1/media/${spelling}`);
    assert.equal(response.status, 200, spelling);
    assert.deepEqual(body, expected, spelling);
  }
  // an escape that decodes to no id stays unknown
  for (const spelling of [`${id}%00`, `${id.slice(0, -1)}%`, `..%2F${id}`]) {
    assert.equal((await fetchMedia(cluster, "acme", `/v1/media/${spelling}`)).response.status, 404);
  }
});

Deno.test("the media of a deleted message is 404 for both sides", async () => {
  await using cluster = await startCluster({ nats: false });
  const { alice, message } = await chatWithVideo(cluster, await fixture("video.mp4"));
  assert.equal((await fetchMedia(cluster, "acme", message.media_url)).response.status, 200);
  await acked(alice, { action: "delete_message", message_id: message.id });
  assert.equal((await fetchMedia(cluster, "acme", message.media_url)).response.status, 404);
  assert.equal((await fetchMedia(cluster, "alice", message.media_url)).response.status, 404);
});

Deno.test("an upload by POST is sent with media_id and reaches the other side as media_url", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id);
  await using vendor = await joinChat(cluster, "acme", chat.id);
  const audio = await fixture("audio.m4a");
  // a streamed body (chunked, no Content-Length), kind from the Content-Type
  const { status, json } = await uploadMedia(
    cluster,
    "alice",
    { chat_id: chat.id },
    ReadableStream.from([audio.subarray(0, 100), audio.subarray(100)]),
    { "content-type": "audio/mp4" },
  );
  assert.equal(status, 201, JSON.stringify(json));
  assert.equal(json.chat_id, chat.id);
  assert.equal(json.media_type, "audio");
  assert.equal(json.mime_type, "audio/x-m4a");
  assert.equal(json.size, audio.length);
  assert.equal(json.media_url, `/v1/media/${json.media_id}`);
  // not sent yet: its uploader may look at it, the other side may not
  assert.equal((await fetchMedia(cluster, "alice", json.media_url)).response.status, 200);
  assert.equal((await fetchMedia(cluster, "acme", json.media_url)).response.status, 404);
  const ack = await acked(alice, {
    action: "send_message",
    receiver_id: "acme",
    media_type: "audio",
    media_id: json.media_id,
  });
  assert.equal(ack.message.media_url, json.media_url);
  const received = await vendor.nextOfType("chat_message");
  assert.equal(received.message.media_url, json.media_url);
  const { response, body } = await fetchMedia(cluster, "acme", json.media_url);
  assert.equal(response.status, 200);
  assert.deepEqual(body, audio);
});

Deno.test("a streamed MP3 upload whose ID3v2 tag ends at byte 4099 is read past the tag", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const mp3 = await mp3WithTagEndingAt(4_099);
  const pieces = [mp3.subarray(0, 1_000), mp3.subarray(1_000, 4_100), mp3.subarray(4_100)];
  const { status, json } = await uploadMedia(
    cluster,
    "alice",
    { chat_id: chat.id, media_type: "audio" },
    ReadableStream.from(pieces),
  );
  assert.equal(status, 201, JSON.stringify(json));
  assert.equal(json.mime_type, "audio/mpeg");
  assert.equal(json.size, mp3.length);
  const { body } = await fetchMedia(cluster, "alice", json.media_url);
  assert.deepEqual(body, mp3);
});

Deno.test("an upload is checked like base64: spoofed types 415, over the limit 413, nothing stored", async () => {
  await using cluster = await startCluster({ nats: false, env: { MEDIA_MAX_IMAGE_BYTES: "5000" } });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const text = new TextEncoder().encode("just some text, nothing more ".repeat(100));
  const png = await fixture("image.png");
  const spoofs: Array<[Record<string, string>, Uint8Array<ArrayBuffer>]> = [
    [{ chat_id: chat.id, media_type: "image" }, text],
    [{ chat_id: chat.id, media_type: "video" }, png],
    [{ chat_id: chat.id }, text],
  ];
  for (const [query, body] of spoofs) {
    const { status, json } = await uploadMedia(cluster, "alice", query, body);
    assert.equal(status, 415, JSON.stringify(json));
    assert.equal(json.code, "unsupported_media");
  }
  // declared too large: refused before the body is read
  const declared = await uploadMedia(
    cluster,
    "alice",
    { chat_id: chat.id, media_type: "image" },
    await paddedFixture("image.png", 5001),
  );
  assert.equal(declared.status, 413);
  assert.equal(declared.json.code, "payload_too_large");
  // streamed without a length: refused as it passes the limit
  const streamed = await uploadMedia(
    cluster,
    "alice",
    { chat_id: chat.id, media_type: "image" },
    ReadableStream.from([await paddedFixture("image.png", 4000), new Uint8Array(1001)]),
  );
  assert.equal(streamed.status, 413);
  assert.deepEqual(await stored(cluster), { blobs: 0, chunks: 0, uploads: 0 });
  const atLimit = await uploadMedia(
    cluster,
    "alice",
    { chat_id: chat.id },
    ReadableStream.from([await paddedFixture("image.png", 4000), new Uint8Array(1000)]),
  );
  assert.equal(atLimit.status, 201, JSON.stringify(atLimit.json));
  assert.equal(atLimit.json.media_type, "image");
  const fetched = await fetchMedia(cluster, "alice", atLimit.json.media_url);
  assert.equal(fetched.body.length, 5000);
});

Deno.test("a file with bytes in front of its magic, or only part of a GIF's, is refused: 415 by POST, unsupported_media over the socket", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id);
  const bom = Uint8Array.of(0xef, 0xbb, 0xbf);
  const spoofs: Array<[string, "image" | "audio" | "video", Uint8Array<ArrayBuffer>]> = [
    ["a UTF-8 BOM before a PNG", "image", concat(bom, await fixture("image.png"))],
    ["two BOMs before an MP4", "video", concat(bom, bom, await fixture("video.mp4"))],
    ["a BOM before an MP3", "audio", concat(bom, await fixture("audio.mp3"))],
    ["GIF and then HTML", "image", new TextEncoder().encode("GIF<html><script>alert(1)</script>")],
  ];
  for (const [what, kind, bytes] of spoofs) {
    const { status, json } = await uploadMedia(cluster, "alice", {
      chat_id: chat.id,
      media_type: kind,
    }, bytes);
    assert.equal(status, 415, `${what}: ${JSON.stringify(json)}`);
    await refused(alice, {
      action: "send_message",
      receiver_id: "acme",
      media_type: kind,
      [kind]: bytes.toBase64(),
    }, "unsupported_media");
  }
  assert.deepEqual(await stored(cluster), { blobs: 0, chunks: 0, uploads: 0 });
});

Deno.test("an upload needs a participant with a token and a chat id", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const png = await fixture("image.png");
  const outsider = await uploadMedia(cluster, "mallory", { chat_id: chat.id }, png);
  assert.equal(outsider.status, 403);
  const unknownChat = await uploadMedia(cluster, "alice", { chat_id: crypto.randomUUID() }, png);
  assert.equal(unknownChat.status, 403);
  const noChat = await uploadMedia(cluster, "alice", {}, png);
  assert.equal(noChat.status, 400);
  assert.deepEqual(noChat.json.issues, [{ path: "chat_id", message: "a chat id is required" }]);
  const badKind = await uploadMedia(
    cluster,
    "alice",
    { chat_id: chat.id, media_type: "text" },
    png,
  );
  assert.equal(badKind.status, 400);
  const anonymous = await fetch(`${cluster.main.httpUrl}/v1/media?chat_id=${chat.id}`, {
    method: "POST",
    body: png,
  });
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
  const wrongMethod = await fetch(`${cluster.main.httpUrl}/v1/media`, { method: "PUT", body: png });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get("allow"), "POST, OPTIONS");
  await wrongMethod.body?.cancel();
});

Deno.test("media_id must be the sender's own upload in this chat, sent as its media_type", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const other = await cluster.main.service.chat.createChat("alice", "globex");
  await using alice = await joinChat(cluster, "alice", chat.id);
  await using vendor = await joinChat(cluster, "acme", chat.id);
  const png = await fixture("image.png");
  const mine = (await uploadMedia(cluster, "alice", { chat_id: chat.id }, png)).json;
  const elsewhere = (await uploadMedia(cluster, "alice", { chat_id: other.id }, png)).json;
  const vendors = (await uploadMedia(cluster, "acme", { chat_id: chat.id }, png)).json;
  const send = (mediaId: string, mediaType = "image") => ({
    action: "send_message",
    receiver_id: "acme",
    media_type: mediaType,
    media_id: mediaId,
  });
  await refused(alice, send(elsewhere.media_id), "not_found");
  await refused(alice, send(vendors.media_id), "not_found");
  await refused(alice, send(crypto.randomUUID()), "not_found");
  const wrongKind = await refused(alice, send(mine.media_id, "video"), "invalid_payload");
  assert.deepEqual(wrongKind.issues, [{
    path: "media_type",
    message: "must be image for this media",
  }]);
  await acked(alice, send(mine.media_id));
  await vendor.nextOfType("chat_message");
});

Deno.test("the media of a deleted message cannot be sent again: the same refusal as an unknown media_id", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id);
  await using vendor = await joinChat(cluster, "acme", chat.id);
  const png = await fixture("image.png");
  const send = (mediaId: string) => ({
    action: "send_message",
    receiver_id: "acme",
    media_type: "image",
    media_id: mediaId,
  });
  const mediaIdOf = (message: Frame) => String(message.media_url).slice("/v1/media/".length);
  // one uploaded and sent by id, deleted by a moderator; one sent as base64, deleted by alice
  const upload = (await uploadMedia(cluster, "alice", { chat_id: chat.id }, png)).json;
  const byId = (await acked(alice, send(upload.media_id))).message;
  await cluster.main.service.chat.moderateDeleteMessage(byId.id, {
    moderator_id: "mod-1",
    reason: "abuse",
  });
  const inline = (await acked(alice, {
    action: "send_message",
    receiver_id: "acme",
    media_type: "image",
    image: png.toBase64(),
  })).message;
  await acked(alice, { action: "delete_message", message_id: inline.id });

  const { request_id: _, ...unknown } = await refused(
    alice,
    send(crypto.randomUUID()),
    "not_found",
  );
  for (const message of [byId, inline]) {
    const { request_id: _, ...again } = await refused(alice, send(mediaIdOf(message)), "not_found");
    assert.deepEqual(again, unknown, "a deleted message's media reads as unknown");
    assert.equal((await fetchMedia(cluster, "acme", message.media_url)).response.status, 404);
    assert.equal((await fetchMedia(cluster, "alice", message.media_url)).response.status, 404);
  }
  // nothing was sent: the next message is the third of the chat
  const after = await acked(alice, {
    action: "send_message",
    receiver_id: "acme",
    media_type: "text",
    content: "hi",
  });
  assert.equal(after.message.seq, 3);
  await messageWithSeq(vendor, 3);
  assert.deepEqual(vendor.pending("chat_message").map((frame) => frame.message.seq), [1, 2]);
});

Deno.test("with MEDIA_BACKEND=nats an upload streams into the object store and serves ranges", async () => {
  await using bucket = natsBucket();
  await using cluster = await startCluster({
    env: { MEDIA_BACKEND: "nats", MEDIA_NATS_BUCKET: bucket.name },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id);
  // several 128 KiB object store chunks
  const video = await paddedFixture("video.webm", 700_000);
  video.set(crypto.getRandomValues(new Uint8Array(65_536)), 300_000);
  const { status, json } = await uploadMedia(cluster, "alice", { chat_id: chat.id }, video, {
    "content-type": "video/webm",
  });
  assert.equal(status, 201, JSON.stringify(json));
  assert.equal(json.media_type, "video");
  await acked(alice, {
    action: "send_message",
    receiver_id: "acme",
    media_type: "video",
    media_id: json.media_id,
  });
  const whole = await fetchMedia(cluster, "acme", json.media_url);
  assert.equal(sha256Hex(whole.body), sha256Hex(video));
  const part = await fetchMedia(cluster, "acme", json.media_url, {
    headers: { range: "bytes=131000-400000" },
  });
  assert.equal(part.response.status, 206);
  assert.deepEqual(part.body, video.subarray(131_000, 400_001));
  // the same file by base64: still one object
  await acked(alice, {
    action: "send_message",
    receiver_id: "acme",
    media_type: "video",
    video: video.toBase64(),
  });
  assert.deepEqual(await bucket.objects(), [sha256Hex(video)]);
});
