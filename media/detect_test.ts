import assert from "node:assert/strict";
import { concat, id3Tag, mp3Frames, mp3WithTagEndingAt } from "../tests/support/id3.ts";
import {
  ACCEPTED_TYPES,
  DETECTION_BYTES,
  detectionLength,
  detectMedia,
  MAX_DETECTION_BYTES,
} from "./detect.ts";
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

Deno.test("detectMedia() refuses a file its type's magic does not start: BOMs in front, a GIF's half", async () => {
  const bom = Uint8Array.of(0xef, 0xbb, 0xbf);
  const files = ["image.png", "image.jpg", "image.gif", "image.webp", "audio.mp3", "audio.ogg"];
  files.push("audio.wav", "audio.m4a", "audio.webm", "video.mp4", "video.webm", "video.mov");
  for (const name of files) {
    const file = await fixture(name);
    for (const prefix of [bom, concat(bom, bom), concat(bom, id3Tag(100))]) {
      for (const kind of ["image", "audio", "video", null] as const) {
        await assert.rejects(
          detectMedia(concat(prefix, file), kind),
          unsupported,
          `${name} behind ${prefix.length} bytes, as ${kind}`,
        );
      }
    }
  }
  // file-type takes "GIF" for a GIF; its signature is GIF87a or GIF89a
  for (const text of ["GIF<html><script>alert(1)</script>", "GIF8", "GIF90a;"]) {
    await assert.rejects(detectMedia(new TextEncoder().encode(text), "image"), unsupported, text);
  }
  const gif = await fixture("image.gif");
  for (const version of ["GIF87a", "GIF89a"]) {
    const file = concat(new TextEncoder().encode(version), gif.subarray(6));
    assert.deepEqual(await detectMedia(file, "image"), { kind: "image", mime: "image/gif" });
  }
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

const mp3 = { kind: "audio", mime: "audio/mpeg" };

/** The type of `file` read from all of it and from the head a streaming caller would hold. */
async function detectBoth(file: Uint8Array, kind: "audio" | null) {
  const whole = await detectMedia(file, kind);
  assert.deepEqual(await detectMedia(file.subarray(0, detectionLength(file)), kind), whole);
  return whole;
}

Deno.test("detectMedia() reads an MP3 behind an ID3v2 tag wherever the tag ends", async () => {
  // file-type alone, given the first 4100 bytes, found nothing after a tag ending at 4099 or
  // 4100; a tag past MAX_DETECTION_BYTES is taken for MP3 without looking further
  const ends = [45, 4090, 4099, 4100, 4101, 50_000, MAX_DETECTION_BYTES + 10_000];
  for (const end of ends) {
    const file = await mp3WithTagEndingAt(end);
    for (const kind of ["audio", null] as const) {
      assert.deepEqual(await detectBoth(file, kind), mp3, `tag ending at ${end}, kind ${kind}`);
    }
  }
  // two tags in a row, the second ending at 4099
  const twice = concat(id3Tag(3_000), id3Tag(1_099), await mp3Frames());
  assert.deepEqual(await detectBoth(twice, "audio"), mp3);
});

Deno.test("detectMedia() reads an MP3 behind an ID3v2.4 tag with a footer", async () => {
  // file-type skips the tag's size only and lands on the footer ("3DI")
  for (const end of [4090, 4099, 4100, 4111, 50_000]) {
    const file = await mp3WithTagEndingAt(end, { footer: true });
    assert.deepEqual(await detectBoth(file, "audio"), mp3, `tag ending at ${end}`);
  }
});

Deno.test("detectMedia() refuses an ID3v2 tag followed by junk or running past the end of the file", async () => {
  const junk = new TextEncoder().encode("not audio at all ".repeat(300));
  for (const end of [4099, 4100, 50_000]) {
    const file = concat(id3Tag(end), junk);
    for (const kind of ["audio", null] as const) {
      await assert.rejects(detectBoth(file, kind), unsupported, `tag ending at ${end}`);
    }
  }
  // file-type, given 4100 bytes of this, guessed MP3 from the tag running past them
  const truncated = (await mp3WithTagEndingAt(100_000)).subarray(0, 8_000);
  await assert.rejects(detectMedia(truncated, "audio"), unsupported);
  await assert.rejects(detectMedia(id3Tag(4_099), "audio"), unsupported);
});

Deno.test("detectMedia() takes only an MP3 from behind ID3v2 tags: an image or video there is refused", async () => {
  for (const name of ["image.png", "video.mp4"]) {
    const file = concat(id3Tag(50_000), await fixture(name));
    for (const kind of ["image", "video", null] as const) {
      await assert.rejects(detectMedia(file, kind), unsupported, `${name} as ${kind}`);
    }
  }
});

Deno.test("detectionLength() reaches DETECTION_BYTES past the ID3v2 tags, never past MAX_DETECTION_BYTES", async () => {
  assert.equal(detectionLength(await fixture("image.png")), DETECTION_BYTES);
  assert.equal(detectionLength(await fixture("audio.mp3")), 45 + DETECTION_BYTES);
  const file = await mp3WithTagEndingAt(4_099);
  assert.equal(detectionLength(file), 4_099 + DETECTION_BYTES);
  // a header not all there yet asks for no more than the usual sample
  assert.equal(detectionLength(file.subarray(0, 9)), DETECTION_BYTES);
  assert.equal(detectionLength(id3Tag(5_000, { footer: true })), 5_000 + DETECTION_BYTES);
  const lastFollowed = MAX_DETECTION_BYTES - DETECTION_BYTES;
  assert.equal(detectionLength(id3Tag(lastFollowed)), MAX_DETECTION_BYTES);
  // a longer tag, or a forged size up to 256 MiB, is left to file-type on the usual sample
  assert.equal(detectionLength(id3Tag(lastFollowed + 1)), DETECTION_BYTES);
  const forged = new Uint8Array([0x49, 0x44, 0x33, 4, 0, 0, 0x7f, 0x7f, 0x7f, 0x7f]);
  assert.equal(detectionLength(forged), DETECTION_BYTES);
});

Deno.test("only audio and video share types, and only the MP4 and WebM containers", () => {
  const shared = [...ACCEPTED_TYPES.audio].filter((mime) => ACCEPTED_TYPES.video.has(mime));
  assert.deepEqual(shared.sort(), ["video/mp4", "video/webm"]);
  for (const mime of ACCEPTED_TYPES.image) {
    assert.ok(!ACCEPTED_TYPES.audio.has(mime) && !ACCEPTED_TYPES.video.has(mime));
  }
});
