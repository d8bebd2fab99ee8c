import assert from "node:assert/strict";
import { ConfigError, frameBytesFor, loadConfig, MAX_WEBSOCKET_MESSAGE_BYTES } from "./config.ts";

const MiB = 1024 * 1024;
const base = { JWT_SECRET: "0123456789abcdef0123456789abcdef", GRPC_ENABLED: "0" };

Deno.test("media defaults: PostgreSQL, 10 MiB images, 25 MiB audio and video, 36 MiB frames", () => {
  const config = loadConfig(base);
  assert.equal(config.MEDIA_BACKEND, "postgres");
  assert.equal(config.MEDIA_MAX_IMAGE_BYTES, 10 * MiB);
  assert.equal(config.MEDIA_MAX_AUDIO_BYTES, 25 * MiB);
  assert.equal(config.MEDIA_MAX_VIDEO_BYTES, 25 * MiB);
  assert.equal(config.MAX_FRAME_BYTES, 36 * MiB);
  // the base64 of the largest file, with a data: URL and the rest of the frame, fits
  const frame = JSON.stringify({
    action: "send_message",
    request_id: "r".repeat(64),
    chat_id: crypto.randomUUID(),
    receiver_id: "v".repeat(256),
    media_type: "video",
    client_id: "c".repeat(128),
  }).length + "data:video/quicktime;base64,".length + Math.ceil(25 * MiB / 3) * 4;
  assert.ok(frame < config.MAX_FRAME_BYTES - MiB, `${frame} bytes`);
});

Deno.test("media requests per user default to 20 a second with a burst of 100, 4 uploads and 64 downloads open", () => {
  const config = loadConfig(base);
  assert.equal(config.MEDIA_RATE_PER_SECOND, 20);
  assert.equal(config.MEDIA_RATE_BURST, 100);
  assert.equal(config.MEDIA_MAX_UPLOADS_PER_USER, 4);
  assert.equal(config.MEDIA_MAX_DOWNLOADS_PER_USER, 64);
  assert.equal(loadConfig({ ...base, MEDIA_RATE_PER_SECOND: "0.5" }).MEDIA_RATE_PER_SECOND, 0.5);
});

Deno.test("the frame limit follows the largest media limit, up to Deno's 64 MiB", () => {
  assert.equal(
    loadConfig({ ...base, MEDIA_MAX_VIDEO_BYTES: String(40 * MiB) }).MAX_FRAME_BYTES,
    56 * MiB,
  );
  assert.equal(
    loadConfig({ ...base, MEDIA_MAX_AUDIO_BYTES: String(100 * MiB) }).MAX_FRAME_BYTES,
    MAX_WEBSOCKET_MESSAGE_BYTES,
  );
  assert.equal(loadConfig({ ...base, MAX_FRAME_BYTES: "65536" }).MAX_FRAME_BYTES, 65536);
  assert.equal(frameBytesFor(3 * MiB), 6 * MiB);
});

Deno.test("loadConfig refuses a media setting it cannot honour", () => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ MEDIA_BACKEND: "nats" }, "MEDIA_BACKEND"],
    [{ MEDIA_BACKEND: "s3" }, "MEDIA_BACKEND"],
    [{ MEDIA_NATS_BUCKET: "media.bucket" }, "MEDIA_NATS_BUCKET"],
    [{ MEDIA_MAX_IMAGE_BYTES: "0" }, "MEDIA_MAX_IMAGE_BYTES"],
    [{ MAX_FRAME_BYTES: String(65 * MiB) }, "MAX_FRAME_BYTES"],
    [{ MEDIA_RATE_PER_SECOND: "0" }, "MEDIA_RATE_PER_SECOND"],
    [{ MEDIA_RATE_BURST: "1.5" }, "MEDIA_RATE_BURST"],
    [{ MEDIA_MAX_UPLOADS_PER_USER: "0" }, "MEDIA_MAX_UPLOADS_PER_USER"],
    [{ MEDIA_MAX_DOWNLOADS_PER_USER: "-1" }, "MEDIA_MAX_DOWNLOADS_PER_USER"],
  ];
  for (const [change, variable] of cases) {
    assert.throws(
      () => loadConfig({ ...base, ...change }),
      (error: unknown) => error instanceof ConfigError && error.message.includes(`${variable}:`),
      variable,
    );
  }
  const nats = loadConfig({ ...base, MEDIA_BACKEND: "nats", NATS_URL: "nats://127.0.0.1:4222" });
  assert.equal(nats.MEDIA_NATS_BUCKET, "chat_media");
});
