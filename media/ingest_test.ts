import assert from "node:assert/strict";
import { createHash } from "node:crypto";
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
