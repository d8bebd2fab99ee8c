import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Base64UrlPaddedCodec, Objm, StorageType } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import assert from "node:assert/strict";
import { natsBucket, paddedFixture, sha256Hex } from "../tests/support/media.ts";
import { type NatsServer, startNatsServer } from "../tests/support/nats_server.ts";
import { TEST_NATS_URL } from "../tests/support/service.ts";
import { startTcpProxy } from "../tests/support/tcp_proxy.ts";
import { within } from "../tests/support/wait.ts";
import { ConfigError } from "../config.ts";
import { MediaError } from "./errors.ts";
import { createNatsMediaStore } from "./nats_media_store.ts";
import type { MediaStore } from "./store.ts";
import type { UploadSweep } from "./upload_sweep.ts";

const limits = { image: 10_000_000, audio: 10_000_000, video: 10_000_000 };

/**
 * `test` with a store on a NATS server of its own, which it may stop and start again; then the
 * store is closed, the server stopped and its files removed.
 */
async function onOwnNats(
  options: { storage?: "memory" },
  test: (nats: NatsServer, store: MediaStore) => Promise<void>,
): Promise<void> {
  const storeDir = await Deno.makeTempDir();
  try {
    await using nats = await startNatsServer(["--js", "-sd", storeDir]);
    const store = await createNatsMediaStore({
      servers: nats.url,
      bucket: "media",
      owner: "chat",
      ...options,
    });
    try {
      await test(nats, store);
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(storeDir, { recursive: true });
  }
}

/** A store on the test NATS, in memory, over `bucket`. */
function memoryStore(bucket: { name: string }, sweep?: UploadSweep): Promise<MediaStore> {
  return createNatsMediaStore({
    servers: TEST_NATS_URL,
    bucket: bucket.name,
    owner: "chat",
    storage: "memory",
    ...(sweep && { sweep }),
  });
}

/** A store on the test NATS, in memory, over `bucket`, of the deployment `owner`. */
function ownedStore(bucket: { name: string }, owner: string): Promise<MediaStore> {
  return createNatsMediaStore({
    servers: TEST_NATS_URL,
    bucket: bucket.name,
    owner,
    storage: "memory",
  });
}

/** Whether `error` is the refusal of a bucket another deployment owns. */
function isOthersBucket(bucket: { name: string }, error: unknown): boolean {
  return error instanceof ConfigError &&
    error.message.startsWith("invalid configuration: MEDIA_NATS_BUCKET: ") &&
    error.message.includes(bucket.name) && error.message.includes("NATS_SUBJECT_PREFIX");
}

Deno.test("NATS media store: a bucket another deployment (NATS_SUBJECT_PREFIX) uses is refused at start, its files kept", async () => {
  await using bucket = natsBucket();
  const first = await ownedStore(bucket, "chat_a");
  try {
    const { sha256 } = await first.put(await paddedFixture("video.mp4", 100_000), {
      kind: "video",
      limits,
    });
    // its unsent-media sweep would delete every file of chat_a's
    await assert.rejects(ownedStore(bucket, "chat_b"), (error) => isOthersBucket(bucket, error));
    assert.deepEqual(await bucket.objects(), [sha256]);
    assert.equal(await first.exists(sha256), true);
  } finally {
    await first.close();
  }
});

Deno.test("NATS media store: the instances of one deployment share its bucket, at once and after a restart", async () => {
  await using bucket = natsBucket();
  const first = await ownedStore(bucket, "chat_a");
  const second = await ownedStore(bucket, "chat_a");
  try {
    const { sha256 } = await first.put(await paddedFixture("video.mp4", 100_000), {
      kind: "video",
      limits,
    });
    assert.equal(await second.exists(sha256), true);
  } finally {
    await second.close();
    await first.close();
  }
  const again = await ownedStore(bucket, "chat_a");
  await again.close();
});

Deno.test("NATS media store: a bucket an older release made, unmarked, is taken over by the first deployment to start", async () => {
  await using bucket = natsBucket();
  const nc = await connect({ servers: TEST_NATS_URL });
  try {
    const old = await new Objm(nc).create(bucket.name, { storage: StorageType.Memory });
    await old.put({ name: "a".repeat(64) }, ReadableStream.from([new Uint8Array(100)]));
  } finally {
    await nc.close();
  }
  const store = await ownedStore(bucket, "chat_a");
  try {
    assert.equal(await store.exists("a".repeat(64)), true);
    await assert.rejects(ownedStore(bucket, "chat_b"), (error) => isOthersBucket(bucket, error));
    await (await ownedStore(bucket, "chat_a")).close();
  } finally {
    await store.close();
  }
});

Deno.test("NATS media store: an upload that fails after its bytes were written leaves nothing behind", async () => {
  await using bucket = natsBucket();
  const store = await memoryStore(bucket);
  const nc = await connect({ servers: TEST_NATS_URL });
  try {
    const file = await paddedFixture("video.mp4", 300_000);
    file.set(crypto.getRandomValues(new Uint8Array(1_000)), 100_000);
    // metadata no reader can parse under the file's name: the store's look-up for it, made
    // once the upload is written, fails
    const meta = `$O.${bucket.name}.M.${Base64UrlPaddedCodec.encode(sha256Hex(file))}`;
    await jetstream(nc).publish(meta, "not json");

    await assert.rejects(
      store.put(file, { kind: "video", limits }),
      (error) => error instanceof MediaError && error.code === "unavailable",
    );
    // the upload's chunks and metadata go, after the answer
    const jsm = await jetstreamManager(nc);
    const deadline = Date.now() + 10_000;
    while (true) {
      const { state } = await jsm.streams.info(`OBJ_${bucket.name}`, { subjects_filter: ">" });
      const subjects = Object.keys(state.subjects ?? {});
      if (subjects.length === 1 && subjects[0] === meta) break;
      if (Date.now() > deadline) assert.fail(`kept: ${subjects.join(", ")}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } finally {
    await nc.close();
    await store.close();
  }
});

Deno.test("NATS media store: uploads left by an instance killed mid-upload are deleted at start and later, and live ones and files are kept", async () => {
  await using bucket = natsBucket();
  const writer = await memoryStore(bucket);
  const nc = await connect({ servers: TEST_NATS_URL });
  const js = jetstream(nc);
  const chunks = (nuid: string) => `$O.${bucket.name}.C.${nuid}`;
  const meta = (name: string) => `$O.${bucket.name}.M.${Base64UrlPaddedCodec.encode(name)}`;
  let sweeper: MediaStore | undefined;
  try {
    const file = await paddedFixture("video.mp4", 300_000);
    const { sha256 } = await writer.put(file, { kind: "video", limits });
    // killed while writing: chunks that no object points at
    await js.publish(chunks("killedwhilewriting"), new Uint8Array(100));
    // killed before the rename: an object still under its upload name
    const objects = await new Objm(nc).open(bucket.name);
    await objects.put(
      { name: `upload.${crypto.randomUUID()}` },
      ReadableStream.from([new Uint8Array(100)]),
    );
    // killed between the rename and the upload name's removal: that name points at the file's
    // chunks, which must stay
    const renamed = await (await jetstreamManager(nc)).streams.getMessage(`OBJ_${bucket.name}`, {
      last_by_subj: meta(sha256),
    });
    const leftName = `upload.${crypto.randomUUID()}`;
    await js.publish(
      meta(leftName),
      JSON.stringify({ ...renamed!.json<object>(), name: leftName }),
    );
    const afterMs = 2_000;
    await new Promise((resolve) => setTimeout(resolve, afterMs));
    // an upload under way: written to a moment ago
    await js.publish(chunks("stillwriting"), new Uint8Array(100));

    const swept: number[] = [];
    sweeper = await memoryStore(bucket, {
      afterMs,
      onSwept: (uploads) => swept.push(uploads),
      onError: assert.fail,
    });
    await untilObjects(bucket, [sha256, "chunks of no object: stillwriting"]);
    // once its last write is older than afterMs, a later sweep takes the live one too
    await untilObjects(bucket, [sha256]);
    assert.equal(swept.reduce((sum, uploads) => sum + uploads, 0), 4);
    assert.equal((await objects.list()).filter((info) => !info.deleted).length, 1);
    assert.equal(sha256Hex(await new Response(await sweeper.open(sha256)).bytes()), sha256);
  } finally {
    await sweeper?.close();
    await nc.close();
    await writer.close();
  }
});

Deno.test("NATS media store: files() goes by when NATS stored a file, not by the clock of the instance that uploaded it", async () => {
  await using bucket = natsBucket();
  const store = await memoryStore(bucket);
  const nc = await connect({ servers: TEST_NATS_URL });
  try {
    const file = await paddedFixture("video.mp4", 300_000);
    const { sha256 } = await store.put(file, { kind: "video", limits });
    // as an instance whose clock runs 8 hours behind names it: the object store's `mtime` is
    // that instance's time, copied by the rename
    const meta = `$O.${bucket.name}.M.${Base64UrlPaddedCodec.encode(sha256)}`;
    const named = await (await jetstreamManager(nc)).streams.getMessage(`OBJ_${bucket.name}`, {
      last_by_subj: meta,
    });
    const mtime = new Date(Date.now() - 8 * 3600_000).toISOString();
    await jetstream(nc).publish(meta, JSON.stringify({ ...named!.json<object>(), mtime }));

    const listed = [];
    for await (const files of store.files({ before: new Date(Date.now() - 7 * 3600_000) })) {
      listed.push(...files);
    }
    assert.deepEqual(listed, [], "a file stored a moment ago is listed as stored 7 hours ago");
    assert.ok(await store.exists(sha256));
  } finally {
    await nc.close();
    await store.close();
  }
});

/** Waits, up to 10 s, until the bucket's objects and orphaned chunks are `wanted` (sorted). */
async function untilObjects(bucket: { objects(): Promise<string[]> }, wanted: string[]) {
  const deadline = Date.now() + 10_000;
  while (true) {
    const objects = await bucket.objects();
    if (JSON.stringify(objects) === JSON.stringify(wanted)) return;
    if (Date.now() > deadline) assert.fail(`kept: ${objects.join(", ")}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("NATS media store: close() gives up a drain NATS does not answer once its signal aborts, and stops reconnecting", async () => {
  await using bucket = natsBucket();
  await using proxy = startTcpProxy(TEST_NATS_URL);
  const store = await createNatsMediaStore({
    servers: proxy.url,
    bucket: bucket.name,
    owner: "chat",
    storage: "memory",
  });
  // a NATS gone silent: the connection stays open, and the drain is never answered
  proxy.stall("both");

  const controller = new AbortController();
  const closed = store.close(controller.signal);
  controller.abort();
  await within(closed, 10_000, "the store's close after the abort");
  // the sanitizer fails this test if the client left a reconnect or ping timer behind
});

Deno.test("NATS media store: a bucket NATS lost (memory storage, server restarted) is made again, and uploads work again", async () => {
  await onOwnNats({ storage: "memory" }, async (nats, store) => {
    const file = await paddedFixture("video.mp4", 300_000);
    await store.put(file, { kind: "video", limits });
    await nats.stop();
    await nats.start();

    // the first answers may be "unavailable, retry"; a retry must then store the file
    const deadline = Date.now() + 10_000;
    let failure: unknown;
    for (;;) {
      try {
        const { sha256 } = await store.put(file, { kind: "video", limits });
        assert.equal(sha256Hex(await new Response(await store.open(sha256)).bytes()), sha256);
        break;
      } catch (error) {
        failure = error;
      }
      if (Date.now() > deadline) {
        assert.fail(`uploads kept failing: ${failure}; ${(failure as Error).cause}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });
});

Deno.test("NATS media store: readiness says ready only once its bucket is there again, after NATS lost it", async () => {
  await onOwnNats({ storage: "memory" }, async (nats, store) => {
    assert.equal(await store.check(), true);
    await nats.stop();
    await nats.start();
    // connected again, but the bucket went with the server: ready must mean usable
    const deadline = Date.now() + 10_000;
    while (!(await store.check())) {
      if (Date.now() > deadline) assert.fail("never ready again");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const file = await paddedFixture("video.mp4", 100_000);
    const { sha256 } = await store.put(file, { kind: "video", limits });
    assert.equal(await store.exists(sha256), true);
  });
});

Deno.test("NATS media store: a download under way goes on across a NATS restart, without waiting out a lost request", async () => {
  await onOwnNats({}, async (nats, store) => {
    const file = await paddedFixture("video.mp4", 1_000_000);
    file.set(crypto.getRandomValues(new Uint8Array(65_536)), 200_000);
    const { sha256 } = await store.put(file, { kind: "video", limits });
    const reader = (await store.open(sha256))!.getReader();
    const first = await reader.read();
    // the stream has asked for the next chunk already: that request goes with the connection
    await nats.stop();
    await nats.start();
    const began = Date.now();
    const rest = await new Response(
      new ReadableStream({
        pull: async (controller) => {
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
      }),
    ).bytes();
    assert.equal(sha256Hex(new Uint8Array([...first.value!, ...rest])), sha256);
    // the client's request timeout is 5 s; a reconnect takes about one
    assert.ok(Date.now() - began < 4_000, `resumed after ${Date.now() - began} ms`);
  });
});

Deno.test("NATS media store: a bucket NATS lost is made again as its deployment's: another is refused it", async () => {
  await onOwnNats({ storage: "memory" }, async (nats, store) => {
    await nats.stop();
    await nats.start();
    const deadline = Date.now() + 10_000;
    while (!(await store.check())) {
      if (Date.now() > deadline) assert.fail("never ready again");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const bucket = { name: "media" };
    await assert.rejects(
      createNatsMediaStore({ servers: nats.url, bucket: bucket.name, owner: "other" }),
      (error) => isOthersBucket(bucket, error),
    );
  });
});

Deno.test("NATS media store: the chunks of an upload NATS went away from are deleted once it is back, not left to the sweep hours later", async () => {
  await onOwnNats({}, async (nats, store) => {
    const file = await paddedFixture("video.mp4", 3_000_000);
    let sent = 0;
    // a client still sending, a piece every 20 ms
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        if (sent >= file.length) return controller.close();
        controller.enqueue(file.slice(sent, sent += 64 * 1024));
      },
    });
    const put = store.put(body, { kind: "video", limits });
    put.catch(() => {});
    const chunks = async () => {
      const nc = await connect({ servers: nats.url });
      try {
        const { state } = await (await jetstreamManager(nc)).streams.info("OBJ_media", {
          subjects_filter: "$O.media.C.>",
        });
        return Object.keys(state.subjects ?? {});
      } finally {
        await nc.close();
      }
    };
    while ((await chunks()).length === 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // away for longer than the store's requests wait: its own cleanup cannot reach NATS
    await nats.stop();
    await assert.rejects(
      put,
      (error) => error instanceof MediaError && error.code === "unavailable",
    );
    await nats.start();

    const deadline = Date.now() + 10_000;
    let left: string[];
    while ((left = await chunks()).length > 0) {
      if (Date.now() > deadline) assert.fail(`chunks kept: ${left.join(", ")}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
});

Deno.test("NATS media store: files are deleted from a full bucket (its max_bytes reached), as the sweeps must to make room", async () => {
  await using bucket = natsBucket();
  const store = await memoryStore(bucket);
  const nc = await connect({ servers: TEST_NATS_URL });
  try {
    const file = await paddedFixture("video.mp4", 300_000);
    const { sha256 } = await store.put(file, { kind: "video", limits });
    const jsm = await jetstreamManager(nc);
    const stream = `OBJ_${bucket.name}`;
    // full: not one more message is taken, as under a bucket's or an account's quota
    const { state } = await jsm.streams.info(stream);
    await jsm.streams.update(stream, { max_bytes: state.bytes });

    await store.delete(sha256);
    assert.equal(await store.exists(sha256), false);
    assert.deepEqual(await bucket.objects(), []);
    assert.equal((await jsm.streams.info(stream)).state.bytes, 0);
  } finally {
    await nc.close();
    await store.close();
  }
});
