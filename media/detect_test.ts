import assert from "node:assert/strict";
import { ACCEPTED_TYPES, detectMedia } from "./detect.ts";
import { MediaError } from "./errors.ts";

const fixture = (name: string) =>
  Deno.readFile(new URL(`../tests/fixtures/${name}`, import.meta.url));
const unsupported = (error: unknown) =>
  error instanceof MediaError && error.code === "unsupported_type";

Deno.test("detectMedia() reads each accepted container from its magic bytes", async () => {
  const expected: Array<[string, "image" | "audio" | "video", string]> = [
    ["image.png", "image", "image/png"],
    ["image.jpg", "image", "image/jpeg"],
    ["image.gif", "image", "image/gif"],
    ["image.webp", "image", "image/webp"],
    ["audio.mp3", "audio", "audio/mpeg"],
    ["audio.ogg", "audio", "audio/ogg"],
    ["audio.wav", "audio", "audio/wav"],
    ["audio.m4a", "audio", "audio/x-m4a"],
    ["audio.webm", "audio", "video/webm"],
    ["video.mp4", "video", "video/mp4"],
    ["video.webm", "video", "video/webm"],
    ["video.mov", "video", "video/quicktime"],
  ];
  for (const [name, kind, mime] of expected) {
    assert.deepEqual(await detectMedia(await fixture(name), kind), { kind, mime }, name);
  }
});

Deno.test("detectMedia() refuses a file of another kind than the sender says", async () => {
  await assert.rejects(detectMedia(await fixture("image.png"), "video"), unsupported);
  await assert.rejects(detectMedia(await fixture("video.mov"), "audio"), unsupported);
  await assert.rejects(detectMedia(await fixture("audio.m4a"), "video"), unsupported);
  await assert.rejects(detectMedia(await fixture("audio.mp3"), "image"), unsupported);
});

Deno.test("detectMedia() refuses text, HTML, SVG and unknown bytes whatever they are called", async () => {
  const texts = [
    "hello, this is text",
    "<!doctype html><script>alert(1)</script>",
    '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
  ];
  for (const text of texts) {
    for (const kind of ["image", "audio", "video", null] as const) {
      await assert.rejects(detectMedia(new TextEncoder().encode(text), kind), unsupported);
    }
  }
  await assert.rejects(detectMedia(new Uint8Array(0), "image"), unsupported);
  await assert.rejects(
    detectMedia(crypto.getRandomValues(new Uint8Array(4100)), null),
    unsupported,
  );
});

Deno.test("detectMedia() without a kind takes it from the bytes; MP4 and WebM count as video", async () => {
  assert.equal((await detectMedia(await fixture("image.gif"), null)).kind, "image");
  assert.equal((await detectMedia(await fixture("audio.wav"), null)).kind, "audio");
  assert.equal((await detectMedia(await fixture("audio.m4a"), null)).kind, "audio");
  assert.equal((await detectMedia(await fixture("video.mp4"), null)).kind, "video");
  assert.equal((await detectMedia(await fixture("audio.webm"), null)).kind, "video");
  // which a sender may still call audio
  assert.equal((await detectMedia(await fixture("audio.webm"), "audio")).kind, "audio");
});

Deno.test("only audio and video share types, and only the MP4 and WebM containers", () => {
  const shared = [...ACCEPTED_TYPES.audio].filter((mime) => ACCEPTED_TYPES.video.has(mime));
  assert.deepEqual(shared.sort(), ["video/mp4", "video/webm"]);
  for (const mime of ACCEPTED_TYPES.image) {
    assert.ok(!ACCEPTED_TYPES.audio.has(mime) && !ACCEPTED_TYPES.video.has(mime));
  }
});
