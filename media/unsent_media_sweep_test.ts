import assert from "node:assert/strict";
import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import { createChatMedia } from "../chat/media.ts";
import type { ChatStore } from "../chat/ports.ts";
import type { Chat } from "../chat/types.ts";
import { startEmbeddedPostgres } from "../db/embedded.ts";
import { migrate } from "../db/migrate.ts";
import { createPostgresStore } from "../db/postgres_store.ts";
import { connectPool } from "../db/pools.ts";
import { clockAhead } from "../tests/support/clock.ts";
import { freshDatabase, waitingForLock } from "../tests/support/database.ts";
import { within } from "../tests/support/wait.ts";
import { natsBucket } from "../tests/support/media.ts";
import { TEST_NATS_URL } from "../tests/support/service.ts";
import { startTcpProxy } from "../tests/support/tcp_proxy.ts";
import { createMediaPort } from "./media_port.ts";
import { createNatsMediaStore } from "./nats_media_store.ts";
import { createPostgresMediaStore, postgresMediaStoreWithin } from "./postgres_media_store.ts";
import type { MediaStore } from "./store.ts";
import { sweepUnsentMedia } from "./unsent_media_sweep.ts";

// The sweep over a real chat store and each media store backend: what goes and what stays.

interface Setup extends AsyncDisposable {
  /** The test database's URL. */
  url: string;
  sql: postgres.Sql;
  store: ChatStore;
  media: MediaStore;
}

async function setUp(backend: "postgres" | "nats"): Promise<Setup> {
  const database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  const bucket = backend === "nats" ? natsBucket() : null;
  const media = bucket
    ? await createNatsMediaStore({
      servers: TEST_NATS_URL,
      bucket: bucket.name,
      owner: "chat",
      storage: "memory",
    })
    : createPostgresMediaStore(sql);
  return {
    url: database.url,
    sql,
    store: createPostgresStore(sql),
    media,
    async [Symbol.asyncDispose]() {
      await media.close();
      await bucket?.[Symbol.asyncDispose]();
      await sql.end();
      await database[Symbol.asyncDispose]();
    },
  };
}

const limits = { image: 10_000_000, audio: 10_000_000, video: 10_000_000 };
const video = await Deno.readFile(new URL("../tests/fixtures/video.mp4", import.meta.url));

/** A video of its own: the fixture with random bytes after it. */
function anotherVideo(): Uint8Array<ArrayBuffer> {
  const file = new Uint8Array(video.length + 1_000);
  file.set(video);
  file.set(crypto.getRandomValues(new Uint8Array(1_000)), video.length);
  return file;
}

/** Stores `file` and records it as uploaded by the chat's customer, as POST /v1/media does. */
async function upload(setup: Setup, chat: Chat, file: Uint8Array) {
  const blob = await setup.media.put(file, { kind: "video", limits });
  return await setup.store.createMedia({
    chat_id: chat.id,
    uploader_id: chat.user_id,
    media_type: "video",
    sha256: blob.sha256,
    mime_type: blob.mime,
    size: blob.size,
  });
}

async function send(setup: Setup, chat: Chat, mediaId: string) {
  const { message } = await setup.store.insertMessage({
    chat_id: chat.id,
    sender_id: chat.user_id,
    sender_side: "customer",
    receiver_id: chat.vendor_id,
    media_type: "video",
    content: null,
    media_id: mediaId,
    client_id: null,
  });
  return message;
}

/** Makes media rows two days old: past a retention of a day. */
async function age(setup: Setup, ids: string[]) {
  await setup.sql`update media set created_at = now() - interval '2 days'
                  where id = any(${ids}::uuid[])`;
}

const aDayAgo = () => new Date(Date.now() - 24 * 3600_000);
/** The sweep as main.ts runs it, with nothing stored long enough ago to be taken uncatalogued. */
const sweepOptions = () => ({ before: aDayAgo(), uncataloguedBefore: aDayAgo() });

/** A time after everything stored so far, and before anything stored from now on. */
function now(): Date {
  const stored = Date.now();
  // the next millisecond: the stores' times are as fine as that, or finer
  while (Date.now() <= stored) { /* a millisecond at most */ }
  return new Date();
}

/** `media`, with `stopping` aborted as it is asked to delete bytes: the service stops then. */
function abortingOnDelete(media: MediaStore, stopping: AbortController): MediaStore {
  return {
    ...media,
    async delete(sha256) {
      stopping.abort();
      await media.delete(sha256);
    },
  };
}

async function blobRows(setup: Setup): Promise<string[]> {
  const rows = await setup.sql<Array<{ sha256: string }>>`
    select encode(sha256, 'hex') as sha256 from media_blobs order by 1`;
  return rows.map((row) => row.sha256);
}

for (const backend of ["postgres", "nats"] as const) {
  Deno.test(`${backend}: the sweep deletes an unsent upload older than the retention, and its blob`, async () => {
    await using setup = await setUp(backend);
    const chat = (await setup.store.createChat("c", "v")).chat;
    const [old, recent] = [anotherVideo(), anotherVideo()];
    const expired = await upload(setup, chat, old);
    const kept = await upload(setup, chat, recent);
    await age(setup, [expired.id]);

    assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, sweepOptions()), {
      media: 1,
      blobs: 1,
      files: 0,
    });
    assert.equal(await setup.store.getMedia(expired.id), null);
    assert.equal(await setup.media.exists(expired.sha256), false);
    assert.deepEqual(await blobRows(setup), [kept.sha256]);
    assert.equal((await setup.store.getMedia(kept.id))?.usage, "unsent");
    assert.ok(await setup.media.exists(kept.sha256));
    // nothing more to do
    assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, sweepOptions()), {
      media: 0,
      blobs: 0,
      files: 0,
    });
  });

  Deno.test(`${backend}: the sweep keeps old media a message carries, deleted or not, and a blob an expired upload shares with it`, async () => {
    await using setup = await setUp(backend);
    const chat = (await setup.store.createChat("c", "v")).chat;
    const [sentFile, deletedFile] = [anotherVideo(), anotherVideo()];
    const sent = await upload(setup, chat, sentFile);
    await send(setup, chat, sent.id);
    const ofDeleted = await upload(setup, chat, deletedFile);
    const deletedMessage = await send(setup, chat, ofDeleted.id);
    assert.ok(await setup.store.deleteMessage(deletedMessage.id, chat.user_id));
    // the same bytes as the sent file, uploaded again and never sent
    const sameBytes = await upload(setup, chat, sentFile);
    await age(setup, [sent.id, ofDeleted.id, sameBytes.id]);

    assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, sweepOptions()), {
      media: 1,
      blobs: 0,
      files: 0,
    });
    assert.equal(await setup.store.getMedia(sameBytes.id), null);
    assert.equal((await setup.store.getMedia(sent.id))?.usage, "live");
    assert.equal((await setup.store.getMedia(ofDeleted.id))?.usage, "deleted");
    assert.deepEqual(await blobRows(setup), [sent.sha256, ofDeleted.sha256].sort());
    const bytes = await setup.media.open(sent.sha256);
    assert.deepEqual(await new Response(bytes).bytes(), sentFile);
    assert.ok(await setup.media.exists(ofDeleted.sha256));
  });

  Deno.test(`${backend}: sweeps of several instances at once delete each expired upload, and each uncatalogued file, once`, async () => {
    await using setup = await setUp(backend);
    const chat = (await setup.store.createChat("c", "v")).chat;
    const uploads = [];
    for (let i = 0; i < 6; i++) uploads.push(await upload(setup, chat, anotherVideo()));
    await age(setup, uploads.map((media) => media.id));
    const lost = [];
    for (let i = 0; i < 4; i++) {
      lost.push(await setup.media.put(anotherVideo(), { kind: "video", limits }));
    }

    const options = { before: aDayAgo(), uncataloguedBefore: now() };
    const swept = await Promise.all(
      [1, 2, 3].map(() => sweepUnsentMedia(setup.sql, setup.media, options)),
    );
    assert.equal(swept.reduce((sum, one) => sum + one.media, 0), 6);
    assert.equal(swept.reduce((sum, one) => sum + one.blobs, 0), 6);
    assert.equal(swept.reduce((sum, one) => sum + one.files, 0), 4);
    assert.deepEqual(await blobRows(setup), []);
    for (const media of uploads) assert.equal(await setup.media.exists(media.sha256), false);
    for (const blob of lost) assert.equal(await setup.media.exists(blob.sha256), false);
  });

  Deno.test(`${backend}: a sweep whose signal aborts stops before the next blob, and the next sweep deletes the rest`, async () => {
    await using setup = await setUp(backend);
    const chat = (await setup.store.createChat("c", "v")).chat;
    const uploads = [];
    for (let i = 0; i < 3; i++) uploads.push(await upload(setup, chat, anotherVideo()));
    await age(setup, uploads.map((media) => media.id));
    // the service shuts down while the first blob's bytes are being deleted
    const stopping = new AbortController();
    const store = abortingOnDelete(setup.media, stopping);

    assert.deepEqual(
      await sweepUnsentMedia(setup.sql, store, { ...sweepOptions(), signal: stopping.signal }),
      { media: 3, blobs: 1, files: 0 },
    );
    assert.equal((await blobRows(setup)).length, 2);
    assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, sweepOptions()), {
      media: 0,
      blobs: 2,
      files: 0,
    });
    assert.deepEqual(await blobRows(setup), []);
  });

  Deno.test(`${backend}: a sweep whose signal aborts stops before the next uncatalogued file, and the next sweep deletes the rest`, async () => {
    await using setup = await setUp(backend);
    // bytes stored by instances that died before they wrote their catalogue rows: one page
    const lost = [];
    for (let i = 0; i < 3; i++) {
      lost.push(await setup.media.put(anotherVideo(), { kind: "video", limits }));
    }
    const cutoff = now();
    // the service shuts down while the first file's bytes are being deleted
    const stopping = new AbortController();
    const store = abortingOnDelete(setup.media, stopping);
    const options = { before: aDayAgo(), uncataloguedBefore: cutoff };

    assert.deepEqual(
      await sweepUnsentMedia(setup.sql, store, { ...options, signal: stopping.signal }),
      { media: 0, blobs: 0, files: 1 },
    );
    assert.deepEqual(await blobRows(setup), []);
    assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, options), {
      media: 0,
      blobs: 0,
      files: 2,
    });
    for (const blob of lost) assert.equal(await setup.media.exists(blob.sha256), false);
  });

  Deno.test(`${backend}: an upload that reused bytes the sweep deleted meanwhile is refused, retryable, and leaves no media`, async () => {
    await using setup = await setUp(backend);
    const chat = (await setup.store.createChat("c", "v")).chat;
    const file = anotherVideo();
    const expired = await upload(setup, chat, file);
    await age(setup, [expired.id]);
    // the sweep runs between the store finding the bytes stored (and dropping its own) and
    // the chat store naming them
    const port = createMediaPort(setup.media, { limits });
    const chatMedia = createChatMedia({
      store: setup.store,
      media: {
        ...port,
        async ingest(body, kind) {
          const blob = await port.ingest(body, kind);
          await sweepUnsentMedia(setup.sql, setup.media, sweepOptions());
          return blob;
        },
      },
    });
    const actor = { user_id: chat.user_id, membership: { chat, side: "customer" as const } };
    const body = { stream: ReadableStream.from([file]), length: file.length };
    const refusal = await chatMedia.upload(actor, "video", body).then(
      (media) => assert.fail(`stored ${media.id}, whose bytes are gone`),
      (error: unknown) => error,
    );
    assert.ok(refusal instanceof ChatError && refusal.code === "unavailable", String(refusal));
    assert.equal(refusal.retryable, true);
    const [{ rows }] = await setup.sql<[{ rows: number }]>`select count(*)::int as rows from media`;
    assert.equal(rows, 0);
    // sent again, it is stored whole
    const again = { stream: ReadableStream.from([file]), length: file.length };
    const stored = await createChatMedia({ store: setup.store, media: port }).upload(
      actor,
      "video",
      again,
    );
    assert.deepEqual(await new Response(await setup.media.open(stored.sha256)).bytes(), file);
  });

  Deno.test(`${backend}: the sweep deletes files stored long ago that no catalogue row names, and keeps recent and catalogued ones`, async () => {
    await using setup = await setUp(backend);
    const chat = (await setup.store.createChat("c", "v")).chat;
    // bytes stored by an instance that died before it wrote their catalogue row
    const [lost, catalogued, recent] = [anotherVideo(), anotherVideo(), anotherVideo()];
    const lostBlob = await setup.media.put(lost, { kind: "video", limits });
    const named = await upload(setup, chat, catalogued);
    const cutoff = now();
    const recentBlob = await setup.media.put(recent, { kind: "video", limits });

    const options = { before: aDayAgo(), uncataloguedBefore: cutoff };
    assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, options), {
      media: 0,
      blobs: 0,
      files: 1,
    });
    assert.equal(await setup.media.exists(lostBlob.sha256), false);
    assert.deepEqual(await new Response(await setup.media.open(named.sha256)).bytes(), catalogued);
    assert.ok(await setup.media.exists(recentBlob.sha256));
    assert.deepEqual(await blobRows(setup), [named.sha256]);
    assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, options), {
      media: 0,
      blobs: 0,
      files: 0,
    });
  });

  Deno.test(`${backend}: an upload naming uncatalogued bytes the sweep is deleting waits for it and is refused, retryable, and leaves no media`, async () => {
    await using setup = await setUp(backend);
    const chat = (await setup.store.createChat("c", "v")).chat;
    const file = anotherVideo();
    const lost = await setup.media.put(file, { kind: "video", limits });
    const chatMedia = createChatMedia({
      store: setup.store,
      media: createMediaPort(setup.media, { limits }),
    });
    const actor = { user_id: chat.user_id, membership: { chat, side: "customer" as const } };
    let uploading: Promise<unknown> | undefined;
    // the same bytes uploaded once the sweep has taken them for uncatalogued: the store finds
    // them stored and reuses them, and the chat store is to name them
    const media: MediaStore = {
      ...setup.media,
      async delete(sha256) {
        const body = { stream: ReadableStream.from([file]), length: file.length };
        uploading = chatMedia.upload(actor, "video", body).then(
          (media) => assert.fail(`stored ${media.id}, whose bytes are going`),
          (error: unknown) => error,
        );
        await within(
          waitingForLock(setup.sql, "%insert into media%"),
          5_000,
          "the upload to wait for the sweep",
        );
        await setup.media.delete(sha256);
      },
    };

    const options = { before: aDayAgo(), uncataloguedBefore: now() };
    assert.equal((await sweepUnsentMedia(setup.sql, media, options)).files, 1);
    const refusal = await uploading;
    assert.ok(refusal instanceof ChatError && refusal.code === "unavailable", String(refusal));
    assert.equal(refusal.retryable, true);
    const [{ rows }] = await setup.sql<[{ rows: number }]>`select count(*)::int as rows from media`;
    assert.equal(rows, 0);
    assert.equal(await setup.media.exists(lost.sha256), false);
  });
}

Deno.test("an upload naming a blob while the sweep deletes its catalogue row writes the row anew", async () => {
  await using setup = await setUp("postgres");
  const chat = (await setup.store.createChat("c", "v")).chat;
  const expired = await upload(setup, chat, anotherVideo());
  assert.ok(await setup.store.deleteUnsentMedia(expired.id));
  const sweep = await setup.sql.reserve();
  try {
    // as deleteUnnamedBlob locks it; the upload finds the row there, and waits to name it
    await sweep`begin`;
    await sweep`select 1 from media_blobs where sha256 = decode(${expired.sha256}, 'hex')
                for update`;
    const { id: _, created_at: __, ...again } = expired;
    const naming = setup.store.createMedia({ ...again, mime_type: "video/mp4" });
    await waitingForLock(setup.sql, "%insert into media%");
    await sweep`delete from media_blobs where sha256 = decode(${expired.sha256}, 'hex')`;
    await sweep`commit`;
    const named = await naming;
    assert.equal((await setup.store.getMedia(named.id))?.sha256, expired.sha256);
    assert.deepEqual(await blobRows(setup), [expired.sha256]);
  } finally {
    sweep.release();
  }
});

Deno.test("of two sweeps at once, one sweeps and the other skips, and the next one sweeps again", async () => {
  await using setup = await setUp("postgres");
  const chat = (await setup.store.createChat("c", "v")).chat;
  const expired = await upload(setup, chat, anotherVideo());
  await age(setup, [expired.id]);
  // the first sweep is held while it deletes the blob's bytes: the second starts meanwhile
  const deleting = Promise.withResolvers<void>();
  const proceed = Promise.withResolvers<void>();
  const held: MediaStore = {
    ...setup.media,
    async delete(sha256) {
      deleting.resolve();
      await proceed.promise;
      await setup.media.delete(sha256);
    },
  };
  const first = sweepUnsentMedia(setup.sql, held, sweepOptions());
  await within(deleting.promise, 5_000, "the first sweep to delete bytes");
  const second = await sweepUnsentMedia(setup.sql, setup.media, sweepOptions());
  proceed.resolve();
  const firstSwept = await first;
  assert.deepEqual(second, { media: 0, blobs: 0, files: 0, skipped: true });
  assert.deepEqual(firstSwept, { media: 1, blobs: 1, files: 0 });
  // the lock went with the first sweep
  assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, sweepOptions()), {
    media: 0,
    blobs: 0,
    files: 0,
  });
});

Deno.test("a sweep whose database connections are cut midway fails, the process goes on, and its lease holds the next sweeps off only until it runs out", async () => {
  await using setup = await setUp("postgres");
  await using proxy = startTcpProxy(setup.url);
  // the service's pool, as main.ts opens it, through a link that is cut while the sweep lists
  // the stored files (its first, full pass), between two of its queries
  const sql = connectPool(proxy.url, { max: 4, instanceId: "sweep-test" });
  try {
    const cutting: MediaStore = {
      ...setup.media,
      async *files(options) {
        await proxy.cut();
        yield* setup.media.files(options);
      },
    };
    await assert.rejects(sweepUnsentMedia(sql, cutting, sweepOptions()));
    proxy.restore();
    // its lease could not be given up with the database away: it holds the next sweep off
    // until it runs out
    assert.equal((await sweepUnsentMedia(sql, setup.media, sweepOptions())).skipped, true);
    await setup.sql`update media_sweep set lease_until = now() - interval '1 second'`;
    const after = await sweepUnsentMedia(sql, setup.media, sweepOptions());
    assert.equal(after.skipped, undefined, "a lease run out holds no sweep off");
  } finally {
    proxy.restore();
    await sql.end();
  }
});

Deno.test("a sweep that fails midway has told onDeleted of what it deleted before the failure", async () => {
  await using setup = await setUp("postgres");
  const chat = (await setup.store.createChat("c", "v")).chat;
  const uploads = [
    await upload(setup, chat, anotherVideo()),
    await upload(setup, chat, anotherVideo()),
  ];
  await age(setup, uploads.map((media) => media.id));
  // the media store fails at its second file: the first is gone, with its catalogue row
  let deletes = 0;
  const failing: MediaStore = {
    ...setup.media,
    async delete(sha256) {
      if (++deletes === 2) throw new ChatError("unavailable", "the media store is away");
      await setup.media.delete(sha256);
    },
  };
  const told = { media: 0, blobs: 0, files: 0 };
  await assert.rejects(
    sweepUnsentMedia(setup.sql, failing, {
      ...sweepOptions(),
      onDeleted: (kind, count) => told[kind] += count,
    }),
    /the media store is away/,
  );
  assert.deepEqual(told, { media: 2, blobs: 1, files: 0 });
  assert.equal((await blobRows(setup)).length, 1, "one blob went before the failure");
});

Deno.test("a sweep that fails midway through uncatalogued files has told onDeleted of those it deleted", async () => {
  await using setup = await setUp("postgres");
  // bytes stored by instances that died before they wrote their catalogue rows: one page
  const lost = [];
  for (let i = 0; i < 2; i++) {
    lost.push(await setup.media.put(anotherVideo(), { kind: "video", limits }));
  }
  const cutoff = now();
  // the media store fails at its second file: the first one's bytes are gone
  let deletes = 0;
  const failing: MediaStore = {
    ...setup.media,
    async delete(sha256) {
      if (++deletes === 2) throw new ChatError("unavailable", "the media store is away");
      await setup.media.delete(sha256);
    },
  };
  const told = { media: 0, blobs: 0, files: 0 };
  await assert.rejects(
    sweepUnsentMedia(setup.sql, failing, {
      before: aDayAgo(),
      uncataloguedBefore: cutoff,
      onDeleted: (kind, count) => told[kind] += count,
    }),
    /the media store is away/,
  );
  const gone = [];
  for (const blob of lost) if (!(await setup.media.exists(blob.sha256))) gone.push(blob);
  assert.equal(gone.length, 1, "one file went before the failure");
  assert.deepEqual(told, { media: 0, blobs: 0, files: 1 });
});

/** Sets media rows' creation time to `at`, as PostgreSQL text or an expression's value. */
async function createdAt(setup: Setup, ids: string[], hoursAgo: number) {
  await setup.sql`update media set created_at = now() - make_interval(hours => ${hoursAgo})
                  where id = any(${ids}::uuid[])`;
}

Deno.test("a sweep looks only at the media that became old enough since the last one", async () => {
  await using setup = await setUp("postgres");
  const chat = (await setup.store.createChat("c", "v")).chat;
  // sent when the first sweep looks at it; its message then goes by other means than the
  // service's (by hand, in SQL): unsent now, but behind what the sweeps have looked at
  const looked = await upload(setup, chat, anotherVideo());
  await send(setup, chat, looked.id);
  await createdAt(setup, [looked.id], 48);
  const first = await sweepUnsentMedia(setup.sql, setup.media, sweepOptions());
  assert.deepEqual(first, { media: 0, blobs: 0, files: 0 });
  await setup.sql`delete from messages where media_id = ${looked.id}`;
  // uploaded after the first sweep's cutoff, and past the second's
  const newer = await upload(setup, chat, anotherVideo());
  await createdAt(setup, [newer.id], 12);

  const second = await sweepUnsentMedia(setup.sql, setup.media, {
    before: new Date(Date.now() - 6 * 3600_000),
    uncataloguedBefore: aDayAgo(),
  });
  assert.deepEqual(second, { media: 1, blobs: 1, files: 0 });
  assert.equal(await setup.store.getMedia(newer.id), null);
  assert.equal((await setup.store.getMedia(looked.id))?.usage, "unsent");
});

Deno.test("a media row the sweep skipped as locked is looked at by the next sweep", async () => {
  await using setup = await setUp("postgres");
  const chat = (await setup.store.createChat("c", "v")).chat;
  const [locked, free] = [
    await upload(setup, chat, anotherVideo()),
    await upload(setup, chat, anotherVideo()),
  ];
  // the locked row older than the other: the sweep must not count itself past it
  await createdAt(setup, [locked.id], 72);
  await createdAt(setup, [free.id], 48);
  const sender = await setup.sql.reserve();
  try {
    // as a send naming it holds it (the foreign key's lock), until it rolls back
    await sender`begin`;
    await sender`select 1 from media where id = ${locked.id} for key share`;
    assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, sweepOptions()), {
      media: 1,
      blobs: 1,
      files: 0,
    });
    await sender`rollback`;
  } finally {
    sender.release();
  }
  assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, sweepOptions()), {
    media: 1,
    blobs: 1,
    files: 0,
  });
  assert.equal(await setup.store.getMedia(locked.id), null);
});

Deno.test("the blob of a media row deleted outside the sweep is deleted by the next sweep", async () => {
  await using setup = await setUp("postgres");
  const chat = (await setup.store.createChat("c", "v")).chat;
  const first = await sweepUnsentMedia(setup.sql, setup.media, sweepOptions());
  assert.deepEqual(first, { media: 0, blobs: 0, files: 0 });
  // a repeated send's base64, discarded (see discardRetriedMedia)
  const discarded = await upload(setup, chat, anotherVideo());
  assert.ok(await setup.store.deleteUnsentMedia(discarded.id));
  assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, sweepOptions()), {
    media: 0,
    blobs: 1,
    files: 0,
  });
  assert.equal(await setup.media.exists(discarded.sha256), false);
  assert.deepEqual(await blobRows(setup), []);
});

Deno.test("an instance whose clock runs ahead of the database's deletes no media the database says is younger than the retention", async () => {
  await using setup = await setUp("postgres");
  const chat = (await setup.store.createChat("c", "v")).chat;
  const [young, expired] = [
    await upload(setup, chat, anotherVideo()),
    await upload(setup, chat, anotherVideo()),
  ];
  // on the database's clock: an hour old, and two days old
  await createdAt(setup, [young.id], 1);
  await createdAt(setup, [expired.id], 48);
  const dayMs = 24 * 3600_000;
  {
    // this instance's clock is two days ahead of the database's; the sweep run as main.ts runs it
    using _ahead = clockAhead(2 * dayMs);
    assert.deepEqual(
      await sweepUnsentMedia(setup.sql, setup.media, {
        before: { ageMs: dayMs },
        uncataloguedBefore: { ageMs: dayMs },
      }),
      { media: 1, blobs: 1, files: 0 },
    );
  }
  assert.equal(await setup.store.getMedia(expired.id), null);
  assert.equal((await setup.store.getMedia(young.id))?.usage, "unsent");
  assert.ok(await setup.media.exists(young.sha256));
});

Deno.test("embedded PGlite (deno task dev): the sweep deletes an unsent upload's blob and an uncatalogued file, not failing on a deadlock with itself", async () => {
  // one connection at a time in a transaction: a blob's bytes deleted on another connection of
  // the pool while the transaction that deletes its catalogue row waits for them never start
  const embedded = await startEmbeddedPostgres("memory://");
  const sql = postgres(embedded.url, { max: 4, onnotice: () => {} });
  const media = createPostgresMediaStore(sql, { copy: false });
  await using setup: Setup = {
    url: embedded.url,
    sql,
    store: createPostgresStore(sql),
    media,
    async [Symbol.asyncDispose]() {
      await media.close();
      await sql.end();
      await embedded.close();
    },
  };
  await migrate(sql);
  const chat = (await setup.store.createChat("c", "v")).chat;
  const expired = await upload(setup, chat, anotherVideo());
  await age(setup, [expired.id]);
  // and a file no catalogue row names
  const lost = await setup.media.put(anotherVideo(), { kind: "video", limits });

  // as main.ts runs it on the embedded database
  const options = {
    ...sweepOptions(),
    uncataloguedBefore: now(),
    storeWithin: postgresMediaStoreWithin,
  };
  assert.deepEqual(await sweepUnsentMedia(setup.sql, setup.media, options), {
    media: 1,
    blobs: 1,
    files: 1,
  });
  assert.equal(await setup.media.exists(expired.sha256), false);
  assert.equal(await setup.media.exists(lost.sha256), false);
  assert.deepEqual(await blobRows(setup), []);
});
