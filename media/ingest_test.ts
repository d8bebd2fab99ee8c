import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { concat, id3Tag, mp3WithTagEndingAt } from "../tests/support/id3.ts";
import { DETECTION_BYTES, MAX_DETECTION_BYTES } from "./detect.ts";
import { MediaError } from "./errors.ts";
import { inspect } from "./ingest.ts";

const limits = { image: 10_000, audio: 50_000, video: 100_000 };
const png = await Deno.readFile(new URL("../tests/fixtures/image.png", import.meta.url));

function padded(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  out.set(bytes);
  out.fill(7, bytes.length);
  return out;
}

async function drain(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const chunk of chunks) out.push(chunk.slice());
  return out;
}

const refusedWith = (code: string) => (error: unknown) =>
  error instanceof MediaError && error.code === code;

Deno.test("inspect() yields a file in chunks and gives its SHA-256, size and detected type", async () => {
  const file = padded(png, 9_500);
  for (const source of [file, ReadableStream.from([file.subarray(0, 10), file.subarray(10)])]) {
    const inspection = inspect(source, { kind: "image", limits, chunkBytes: 4_000 });
    const chunks = await drain(inspection.chunks);
    assert.deepEqual(chunks.map((chunk) => chunk.length), [4_000, 4_000, 1_500]);
    assert.deepEqual(new Uint8Array(chunks.flatMap((chunk) => [...chunk])), file);
    assert.deepEqual(inspection.result(), {
      sha256: createHash("sha256").update(file).digest("hex"),
      mime: "image/png",
      size: 9_500,
      kind: "image",
    });
  }
});

Deno.test("inspect() yields nothing of a file whose type is refused", async () => {
  const text = new TextEncoder().encode("not an image at all ".repeat(1_000));
  const yielded: Uint8Array[] = [];
  const inspection = inspect(text, { kind: "image", limits, chunkBytes: 100 });
  await assert.rejects(async () => {
    for await (const chunk of inspection.chunks) yielded.push(chunk);
  }, refusedWith("unsupported_type"));
  assert.equal(yielded.length, 0);
  assert.throws(() => inspection.result());
});

Deno.test("inspect() stops an endless stream as soon as it passes the limit, and cancels it", async () => {
  let pulled = 0;
  let cancelled = false;
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(pulled++ === 0 ? png : new Uint8Array(1_000));
    },
    cancel() {
      cancelled = true;
    },
  });
  const inspection = inspect(endless, { kind: "image", limits, chunkBytes: 4_000 });
  await assert.rejects(drain(inspection.chunks), refusedWith("too_large"));
  assert.ok(pulled <= 12, `read ${pulled} pieces`);
  assert.ok(cancelled);
});

Deno.test("inspect() holds a file of no given kind to the limit of the kind its bytes show", async () => {
  const inspection = inspect(padded(png, 10_001), { kind: null, limits, chunkBytes: 4_000 });
  await assert.rejects(drain(inspection.chunks), refusedWith("too_large"));
  const fits = inspect(padded(png, 10_000), { kind: null, limits, chunkBytes: 4_000 });
  await drain(fits.chunks);
  assert.equal(fits.result().kind, "image");
});

Deno.test("inspect() passes a failing source's own error through", async () => {
  const failure = new Error("connection reset by the client");
  const broken = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(padded(png, 5_000));
      controller.error(failure);
    },
  });
  const inspection = inspect(broken, { kind: "image", limits, chunkBytes: 4_000 });
  await assert.rejects(drain(inspection.chunks), (error) => error === failure);
});

/** `bytes` as a stream in pieces of `size`. */
function streamOf(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  const pieces: Uint8Array[] = [];
  for (let start = 0; start < bytes.length; start += size) {
    pieces.push(bytes.subarray(start, start + size));
  }
  return ReadableStream.from(pieces);
}

Deno.test("inspect() holds a streamed MP3 until it has the bytes after its ID3v2 tag", async () => {
  const files = [
    ...await Promise.all([4_099, 4_100, 40_000].map((end) => mp3WithTagEndingAt(end))),
    await mp3WithTagEndingAt(4_099, { footer: true }),
  ];
  for (const file of files) {
    for (const kind of ["audio", null] as const) {
      for (const source of [file, streamOf(file, 1_000), streamOf(file, 4_100)]) {
        const inspection = inspect(source, { kind, limits, chunkBytes: 4_000 });
        const chunks = await drain(inspection.chunks);
        assert.deepEqual(concat(...chunks), file);
        assert.deepEqual(inspection.result(), {
          sha256: createHash("sha256").update(file).digest("hex"),
          mime: "audio/mpeg",
          size: file.length,
          kind: "audio",
        });
      }
    }
  }
});

Deno.test("inspect() holds no more than MAX_DETECTION_BYTES behind a forged ID3v2 tag", async () => {
  const big = { image: 10_000, audio: 8 * MAX_DETECTION_BYTES, video: 8 * MAX_DETECTION_BYTES };
  function endless(head: Uint8Array) {
    const counts = { pulled: 0, yielded: 0, cancelled: false };
    const junk = new TextEncoder().encode("not audio ".repeat(100));
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const piece = counts.pulled === 0 ? head : junk;
        counts.pulled += piece.length;
        controller.enqueue(piece);
      },
      cancel() {
        counts.cancelled = true;
      },
    });
    return { stream, counts };
  }
  // the longest tag that is followed: junk after it is refused once the sample is in
  const followed = endless(id3Tag(MAX_DETECTION_BYTES - DETECTION_BYTES));
  const refused = inspect(followed.stream, { kind: "audio", limits: big, chunkBytes: 4_000 });
  await assert.rejects(drain(refused.chunks), refusedWith("unsupported_type"));
  // (a stream pulls one piece ahead of its reader)
  assert.ok(followed.counts.pulled <= MAX_DETECTION_BYTES + 2_000, `${followed.counts.pulled}`);
  assert.ok(followed.counts.cancelled);
  // a forged size past the bound is left to file-type, which takes it for MP3 at once
  const forged = endless(new Uint8Array([0x49, 0x44, 0x33, 4, 0, 0, 0x7f, 0x7f, 0x7f, 0x7f]));
  const guessed = inspect(forged.stream, { kind: "audio", limits: big, chunkBytes: 4_000 });
  for await (const _ of guessed.chunks) break;
  assert.ok(forged.counts.pulled <= DETECTION_BYTES + 2_000, `${forged.counts.pulled}`);
});
