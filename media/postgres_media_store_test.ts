import assert from "node:assert/strict";
import postgres from "postgres";
import { STORE_TIMEOUT_MS } from "../db/errors.ts";
import { freshDatabase } from "../tests/support/database.ts";
import { paddedFixture, sha256Hex } from "../tests/support/media.ts";
import { startTcpProxy } from "../tests/support/tcp_proxy.ts";
import { within } from "../tests/support/wait.ts";
import { MediaError } from "./errors.ts";
import { createPostgresMediaStore } from "./postgres_media_store.ts";

// What the PostgreSQL media store does when the database does not answer: every query it makes
// is held to STORE_TIMEOUT_MS, as the chat store's are, so that a stall cannot hold a download
// or an upload (and the request's place) for as long as the kernel keeps the connection.

const limits = { image: 10_000_000, audio: 10_000_000, video: 10_000_000 };
const answered = STORE_TIMEOUT_MS + 2_000;
const unavailable = (error: unknown) => error instanceof MediaError && error.code === "unavailable";

Deno.test("postgres media store: with the database stalled, opening and reading a file are answered unavailable in time", async () => {
  await using database = await freshDatabase();
  await using proxy = startTcpProxy(database.url);
  const sql = postgres(proxy.url, { max: 4, onnotice: () => {} });
  try {
    const store = createPostgresMediaStore(sql, { chunkBytes: 3_000 });
    const file = await paddedFixture("video.mp4", 10_000);
    const { sha256 } = await store.put(file, { kind: "video", limits });
    const reader = (await store.open(sha256))!.getReader();
    assert.ok(!(await reader.read()).done);

    proxy.stall("downstream");
    await assert.rejects(within(reader.read(), answered, "the next chunk"), unavailable);
    await assert.rejects(within(store.open(sha256), answered, "open()"), unavailable);
    await assert.rejects(within(store.exists(sha256), answered, "exists()"), unavailable);
    proxy.restore();
  } finally {
    await sql.end({ timeout: 1 });
  }
});

Deno.test("postgres media store: an upload whose rename waits on a lock is answered unavailable in time, and its chunks go once the lock does", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  const locker = await sql.reserve();
  try {
    const store = createPostgresMediaStore(sql);
    // two 1 MiB batches: the first is written while the test holds the second back
    const file = await paddedFixture("video.mp4", 1024 * 1024 + 10_000);
    file.set(crypto.getRandomValues(new Uint8Array(1_000)), 500_000);
    const source = Promise.withResolvers<ReadableStreamDefaultController<Uint8Array>>();
    const put = store.put(new ReadableStream({ start: source.resolve }), { kind: "video", limits });
    put.catch(() => {});
    const sending = await source.promise;
    sending.enqueue(file.subarray(0, 1024 * 1024));
    await untilUploadChunks(sql, (chunks) => chunks > 0);

    // a transaction that holds the written rows: the rename must wait for it
    await locker`begin`;
    await locker`select 1 from media_chunks where blob_key like 'upload:%' for update`;
    sending.enqueue(file.subarray(1024 * 1024));
    sending.close();
    await assert.rejects(within(put, answered, "the upload's answer"), unavailable);

    await locker`rollback`;
    await untilUploadChunks(sql, (chunks) => chunks === 0);
    assert.equal(await store.exists(sha256Hex(file)), false);
  } finally {
    locker.release();
    await sql.end();
  }
});

/** Waits, up to 10 s, until the count of chunks under upload keys is as `wanted` says. */
async function untilUploadChunks(sql: postgres.Sql, wanted: (chunks: number) => boolean) {
  const deadline = Date.now() + 10_000;
  while (true) {
    const [row] = await sql<Array<{ chunks: number }>>`
      select count(*)::int as chunks from media_chunks where blob_key like 'upload:%'`;
    if (wanted(row!.chunks)) return;
    if (Date.now() > deadline) assert.fail(`${row!.chunks} chunks under upload keys`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("postgres media store: uploads left by an instance killed mid-upload are deleted at start and later, and live ones are kept", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  try {
    const dead = `upload:${crypto.randomUUID()}`;
    const live = `upload:${crypto.randomUUID()}`;
    const file = await paddedFixture("video.mp4", 10_000);
    const { sha256 } = await createPostgresMediaStore(sql).put(file, { kind: "video", limits });
    // a file is kept however old; an upload last written an hour ago is dead
    await sql`update media_chunks set created_at = now() - interval '1 hour'`;
    await sql`insert into media_chunks (blob_key, byte_offset, data, created_at)
              values (${dead}, 0, '\\x00'::bytea, now() - interval '1 hour'),
                     (${dead}, 1, '\\x00', now() - interval '1 hour'),
                     (${live}, 0, '\\x00', now() - interval '2 hours'),
                     (${live}, 1, '\\x00', now())`;

    const swept: number[] = [];
    const store = createPostgresMediaStore(sql, {
      sweep: { afterMs: 3_000, onSwept: (uploads) => swept.push(uploads), onError: assert.fail },
    });
    try {
      await untilKeys(sql, [live, sha256].sort());
      // once its last write is older than afterMs, the next sweep takes the live one too
      await untilKeys(sql, [sha256]);
      assert.equal(swept.reduce((sum, uploads) => sum + uploads, 0), 2);
      assert.deepEqual(await readAll(await store.open(sha256)), file);
    } finally {
      await store.close();
    }
  } finally {
    await sql.end();
  }
});

/** Waits, up to 10 s, until the keys in `media_chunks` are `keys` (sorted). */
async function untilKeys(sql: postgres.Sql, keys: string[]) {
  const deadline = Date.now() + 10_000;
  while (true) {
    const rows = await sql<Array<{ blob_key: string }>>`
      select distinct blob_key from media_chunks order by blob_key`;
    const stored = rows.map((row) => row.blob_key);
    if (JSON.stringify(stored) === JSON.stringify(keys)) return;
    if (Date.now() > deadline) assert.fail(`stored: ${stored.join(", ")}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function readAll(stream: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  assert.ok(stream, "expected a stream");
  return await new Response(stream).bytes();
}

Deno.test("postgres media store: files() lists the files begun from `since` to before `before`, each once over many pages", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  try {
    // 2,500 files begun three at a time (a page ends within such a three), each with a second
    // chunk; an upload under way; all written by hand, as only the first chunks are listed
    await sql`
      insert into media_chunks (blob_key, byte_offset, data, created_at)
      select encode(sha256(n::text::bytea), 'hex'), o, '\\x00'::bytea, now() - (n / 3) * interval '1 s'
      from generate_series(1, 2500) n, (values (0), (1)) as chunk (o)
      union all
      select 'upload:' || gen_random_uuid(), 0, '\\x00'::bytea, now() - interval '1 hour'`;
    const store = createPostgresMediaStore(sql);
    const listed = async (options: { since?: Date; before: Date }) => {
      const files: string[] = [];
      for await (const batch of store.files(options)) files.push(...batch);
      return files;
    };
    const begun = async (since: Date, before: Date) =>
      (await sql<Array<{ key: string }>>`
        select blob_key as key from media_chunks
        where byte_offset = 0 and blob_key not like 'upload:%'
          and created_at >= ${since} and created_at < ${before}`).map((row) => row.key).sort();
    const before = new Date(Date.now() - 100_000);
    const since = new Date(Date.now() - 700_000);
    const some = await listed({ since, before });
    assert.equal(new Set(some).size, some.length, "a file listed twice");
    assert.deepEqual(some.sort(), await begun(since, before));
    assert.ok(some.length > 1_000, `${some.length} files: one page`);
    const all = await listed({ before: new Date() });
    assert.equal(new Set(all).size, 2_500);
  } finally {
    await sql.end();
  }
});

Deno.test("postgres media store: a file is read back byte for byte from a database whose bytea_output is escape", async () => {
  // bytea_output is a setting a database or role may carry (older applications want 'escape');
  // it cannot go as a startup parameter through PgBouncer
  await using database = await freshDatabase();
  const admin = postgres(database.url, { max: 1, onnotice: () => {} });
  const name = new URL(database.url).pathname.slice(1);
  await admin.unsafe(`alter database ${name} set bytea_output = 'escape'`);
  await admin.end();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  try {
    const store = createPostgresMediaStore(sql, { chunkBytes: 3_000 });
    const file = await paddedFixture("video.mp4", 10_000);
    const { sha256 } = await store.put(file, { kind: "video", limits });
    const read = await new Response(await store.open(sha256)).bytes();
    assert.equal(sha256Hex(read), sha256Hex(file), `read ${read.length} of ${file.length} bytes`);
    const part = await new Response(await store.open(sha256, { start: 2_999, end: 6_000 }))
      .bytes();
    assert.deepEqual(part, file.slice(2_999, 6_001));
  } finally {
    await sql.end();
  }
});
