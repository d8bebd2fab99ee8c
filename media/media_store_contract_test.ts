import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import postgres from "postgres";
import { freshDatabase } from "../tests/support/database.ts";
import { natsBucket } from "../tests/support/media.ts";
import { TEST_NATS_URL } from "../tests/support/service.ts";
import { MediaError } from "./errors.ts";
import { createNatsMediaStore, NATS_CHUNK_BYTES } from "./nats_media_store.ts";
import { createPostgresMediaStore } from "./postgres_media_store.ts";
import type { MediaStore } from "./store.ts";

// One contract, both backends: what the service relies on from any media store.

interface Backend {
  store: MediaStore;
  /** Every key holding bytes, complete or not, sorted: to see what was (not) stored. */
  inventory(): Promise<string[]>;
  /** A chunk boundary of this backend, for ranges that straddle one. */
  chunkBytes: number;
}

async function postgresBackend(copy: boolean): Promise<Backend & AsyncDisposable> {
  const database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  const chunkBytes = 3_000;
  return {
    store: createPostgresMediaStore(sql, { chunkBytes, copy }),
    chunkBytes,
    async inventory() {
      const rows = await sql<Array<{ blob_key: string }>>`
        select distinct blob_key from media_chunks order by blob_key`;
      return rows.map((row) => row.blob_key);
    },
    async [Symbol.asyncDispose]() {
      await sql.end();
      await database[Symbol.asyncDispose]();
    },
  };
}

const backends: Record<string, () => Promise<Backend & AsyncDisposable>> = {
  postgres: () => postgresBackend(true),
  "postgres (INSERT, no COPY)": () => postgresBackend(false),
  async nats() {
    const bucket = natsBucket();
    const store = await createNatsMediaStore({
      servers: TEST_NATS_URL,
      bucket: bucket.name,
      owner: "chat",
      storage: "memory",
    });
    return {
      store,
      chunkBytes: NATS_CHUNK_BYTES,
      inventory: () => bucket.objects(),
      async [Symbol.asyncDispose]() {
        await store.close();
        await bucket[Symbol.asyncDispose]();
      },
    };
  },
};

const limits = { image: 10_000_000, audio: 10_000_000, video: 10_000_000 };
const video = await Deno.readFile(new URL("../tests/fixtures/video.mp4", import.meta.url));

/** A real video padded with random bytes to `size`: every byte tells if a range is right. */
function randomVideo(size: number): Uint8Array<ArrayBuffer> {
  const file = new Uint8Array(size);
  for (let at = 0; at < size; at += 65_536) {
    file.set(crypto.getRandomValues(new Uint8Array(Math.min(65_536, size - at))), at);
  }
  file.set(video);
  return file;
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

async function readAll(stream: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  assert.ok(stream, "expected a stream");
  return await new Response(stream).bytes();
}

const refusedWith = (code: string) => (error: unknown) =>
  error instanceof MediaError && error.code === code;

for (const [name, open] of Object.entries(backends)) {
  Deno.test(`${name} media store: put() keeps a file under its SHA-256 and open() gives it back`, async () => {
    await using backend = await open();
    const file = randomVideo(backend.chunkBytes * 2 + 123);
    const blob = await backend.store.put(file, { kind: "video", limits });
    assert.deepEqual(blob, {
      sha256: sha256(file),
      mime: "video/mp4",
      size: file.length,
      kind: "video",
    });
    assert.ok(await backend.store.exists(blob.sha256));
    assert.deepEqual(await readAll(await backend.store.open(blob.sha256)), file);
    assert.deepEqual(await backend.inventory(), [blob.sha256]);
    const unknown = sha256(new Uint8Array([1]));
    assert.equal(await backend.store.open(unknown), null);
    assert.equal(await backend.store.exists(unknown), false);
  });

  Deno.test(`${name} media store: a streamed file is stored the same as one in memory`, async () => {
    await using backend = await open();
    const file = randomVideo(backend.chunkBytes * 3 + 7);
    const pieces = [file.subarray(0, 5), file.subarray(5, 70_000), file.subarray(70_000)];
    const blob = await backend.store.put(ReadableStream.from(pieces), { kind: null, limits });
    assert.equal(blob.kind, "video");
    assert.deepEqual(await readAll(await backend.store.open(blob.sha256)), file);
  });

  Deno.test(`${name} media store: open() with a range reads exactly it, across chunk boundaries`, async () => {
    await using backend = await open();
    const chunk = backend.chunkBytes;
    const file = randomVideo(chunk * 3 + 500);
    const { sha256: key } = await backend.store.put(file, { kind: "video", limits });
    const ranges = [
      [0, 0],
      [0, chunk - 1],
      [chunk - 1, chunk],
      [chunk + 10, chunk * 3 + 20],
      [chunk * 3, file.length - 1],
      [file.length - 1, file.length - 1],
    ] as const;
    for (const [start, end] of ranges) {
      const part = await readAll(await backend.store.open(key, { start, end }));
      assert.deepEqual(part, file.subarray(start, end + 1), `${start}-${end}`);
    }
  });

  Deno.test(`${name} media store: the same file put twice, even at once, is stored once`, async () => {
    await using backend = await open();
    const file = randomVideo(backend.chunkBytes + 1);
    const [first, second] = await Promise.all([
      backend.store.put(file, { kind: "video", limits }),
      backend.store.put(ReadableStream.from([file]), { kind: "video", limits }),
    ]);
    const third = await backend.store.put(file, { kind: "audio", limits });
    assert.equal(first.sha256, second.sha256);
    assert.equal(third.sha256, first.sha256);
    assert.deepEqual(await backend.inventory(), [first.sha256]);
    assert.deepEqual(await readAll(await backend.store.open(first.sha256)), file);
  });

  Deno.test(`${name} media store: a new file put many times at once keeps one copy of its bytes`, async () => {
    await using backend = await open();
    const file = randomVideo(backend.chunkBytes * 2 + 1);
    // all the puts finish writing together, so they all find the file new when they name it
    // (four: the PostgreSQL backends above have a pool of four connections)
    const blobs = await Promise.all(
      Array.from({ length: 4 }, () => backend.store.put(file, { kind: "video", limits })),
    );
    assert.deepEqual(new Set(blobs.map((blob) => blob.sha256)), new Set([sha256(file)]));
    assert.deepEqual(await backend.inventory(), [sha256(file)]);
    assert.deepEqual(await readAll(await backend.store.open(sha256(file))), file);
  });

  Deno.test(`${name} media store: a refused or broken file leaves nothing behind`, async () => {
    await using backend = await open();
    const text = new TextEncoder().encode("plain text ".repeat(1_000));
    await assert.rejects(
      backend.store.put(text, { kind: "image", limits }),
      refusedWith("unsupported_type"),
    );
    const big = randomVideo(backend.chunkBytes * 2 + 1);
    await assert.rejects(
      backend.store.put(ReadableStream.from([big]), {
        kind: "video",
        limits: { ...limits, video: backend.chunkBytes * 2 },
      }),
      refusedWith("too_large"),
    );
    const failure = new Error("the client went away");
    const broken = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(randomVideo(backend.chunkBytes + 10));
        controller.error(failure);
      },
    });
    await assert.rejects(
      backend.store.put(broken, { kind: "video", limits }),
      (error) => error === failure,
    );
    assert.deepEqual(await backend.inventory(), []);
  });

  Deno.test(`${name} media store: delete() removes a file's bytes, and the file can be put again`, async () => {
    await using backend = await open();
    const [gone, kept] = [randomVideo(backend.chunkBytes * 2 + 5), randomVideo(backend.chunkBytes)];
    const blob = await backend.store.put(gone, { kind: "video", limits });
    const other = await backend.store.put(kept, { kind: "video", limits });
    await backend.store.delete(blob.sha256);
    assert.equal(await backend.store.exists(blob.sha256), false);
    assert.equal(await backend.store.open(blob.sha256), null);
    assert.deepEqual(await backend.inventory(), [other.sha256]);
    // a file that is not there: nothing to do
    await backend.store.delete(blob.sha256);
    await backend.store.put(gone, { kind: "video", limits });
    assert.deepEqual(await readAll(await backend.store.open(blob.sha256)), gone);
    assert.deepEqual(await backend.inventory(), [blob.sha256, other.sha256].sort());
  });

  Deno.test(`${name} media store: files() lists the files begun before a time, not later ones nor uploads under way`, async () => {
    await using backend = await open();
    const older = await backend.store.put(randomVideo(backend.chunkBytes + 1), {
      kind: "video",
      limits,
    });
    const stored = Date.now();
    while (Date.now() <= stored) { /* the next millisecond: a time after `older` */ }
    const cutoff = new Date();
    const newer = await backend.store.put(randomVideo(backend.chunkBytes), {
      kind: "video",
      limits,
    });
    // an upload written in part (more than one batch of the PostgreSQL store) and still going
    const ended = new Error("the test ends the upload");
    let end = (_: Error) => {};
    const going = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(randomVideo(1_200_000));
        end = (error) => controller.error(error);
      },
    });
    const uploading = backend.store.put(going, { kind: "video", limits }).catch((error) => error);
    const deadline = Date.now() + 5_000;
    while ((await backend.inventory()).length < 3) {
      if (Date.now() > deadline) assert.fail("the upload under way wrote nothing");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }

    const listed = async (before: Date) => {
      const files = [];
      for await (const batch of backend.store.files({ before })) files.push(...batch);
      return files.sort();
    };
    assert.deepEqual(await listed(cutoff), [older.sha256]);
    assert.deepEqual(
      await listed(new Date(Date.now() + 60_000)),
      [older.sha256, newer.sha256].sort(),
    );
    end(ended);
    assert.equal(await uploading, ended);
  });

  Deno.test(`${name} media store: a reader that stops early can cancel the stream`, async () => {
    await using backend = await open();
    const file = randomVideo(backend.chunkBytes * 4);
    const { sha256: key } = await backend.store.put(file, { kind: "video", limits });
    const reader = (await backend.store.open(key))!.getReader();
    const first = await reader.read();
    assert.ok(!first.done && first.value.length > 0 && first.value.length <= backend.chunkBytes);
    await reader.cancel();
  });
}

Deno.test("NATS media store: a failed first connection is reported without the credentials in the URL", async () => {
  const error = await createNatsMediaStore({
    servers: "nats://alice:s3cret-password@127.0.0.1:1",
    bucket: "unused",
    owner: "chat",
  }).then(() => assert.fail("connected to nothing"), (error: unknown) => error);
  assert.ok(error instanceof MediaError && error.code === "unavailable");
  assert.doesNotMatch(error.message, /s3cret/);
  assert.match(error.message, /alice:redacted@/);
});
