import {
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
} from "@nats-io/jetstream";
import { type ObjectStore, Objm, StorageType } from "@nats-io/obj";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ConfigError } from "../config.ts";
import { redactUrls } from "../observability/redact.ts";
import { MediaError } from "./errors.ts";
import { inspect } from "./ingest.ts";
import type { ByteRange, MediaStore } from "./store.ts";
import { drainOrClose } from "../bus/nats_close.ts";
import { natsServers } from "../bus/nats_servers.ts";
import { startSweeps, type UploadSweep } from "./upload_sweep.ts";
import {
  isUpload,
  objectBatches,
  objectSubjects,
  sweepNatsUploads,
  UPLOAD_PREFIX,
} from "./nats_upload_sweep.ts";

export interface NatsMediaStoreOptions {
  /** One server URL, or several separated by commas. */
  servers: string;
  /** The object store bucket ([-\w]+); made on first use. */
  bucket: string;
  /**
   * The deployment using the bucket (its NATS_SUBJECT_PREFIX), marked on the bucket: another's
   * is refused, as each deployment's sweeps delete the files its own database does not list.
   */
  owner: string;
  /** The connection name shown in NATS monitoring. */
  name?: string;
  /** Default `file`; `memory` loses the media when the server restarts. */
  storage?: "file" | "memory";
  /**
   * Deletes what the uploads of instances killed mid-upload left in the bucket, at start and
   * then periodically until close(): those last written `afterMs` ago. Absent: none are.
   */
  sweep?: UploadSweep;
  /**
   * Told when NATS refuses an upload's write for want of room (the bucket's `max_bytes` or
   * `max_msgs`, the account's or the server's JetStream storage): every upload fails so until
   * room is made, and its answer (503, retry) says nothing of why.
   */
  onFull?: (error: unknown) => void;
}

/** One chunk message of the object store; NATS's default payload limit is 1 MiB. */
export const NATS_CHUNK_BYTES = 128 * 1024;
const CHECK_TIMEOUT_MS = 2_000;
/** Tries of a chunk's read, one more per reconnect while it waits: a flapping NATS ends it. */
const CHUNK_ATTEMPTS = 3;
/**
 * Tries, while connected, of deleting what a failed upload wrote, and the wait between two
 * (a reconnect ends it sooner); while NATS is away they wait for it.
 */
const CLEANUP_ATTEMPTS = 5;
const CLEANUP_RETRY_MS = 5_000;
const BACK = Symbol("reconnected before the answer");

/**
 * Media bytes in a NATS JetStream object store (`@nats-io/obj`), one object per file named by
 * its SHA-256 hex, for deployments that keep blobs out of the database. It has a connection of
 * its own, so moving files never queues chat events behind a chunk.
 *
 * A file is written as `upload.<uuid>` and renamed to its SHA-256 when complete, unless that
 * file is stored already (or another upload of it named itself first): then it is dropped.
 * Reads fetch one chunk per request with JetStream direct get, so a slow reader holds one
 * chunk; the object store's own `get()` pushes the whole object as fast as NATS sends it. A
 * range read still fetches the chunks before the range (the chunks of an object are not at
 * computable stream positions) but does not keep them.
 * Rejects with MediaError `unavailable` when NATS cannot be reached at first, with ConfigError
 * when the bucket is marked as another deployment's.
 */
export async function createNatsMediaStore(options: NatsMediaStoreOptions): Promise<MediaStore> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      ...natsServers(options.servers),
      ...(options.name === undefined ? {} : { name: options.name }),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
    });
  } catch (cause) {
    const servers = redactUrls(options.servers, { tokenAsUser: true });
    throw new MediaError("unavailable", `cannot connect to NATS at ${servers}`, { cause });
  }
  const connection = nc;
  const { bucket } = options;
  const stream = `OBJ_${bucket}`;
  const storage = options.storage === "memory" ? StorageType.Memory : StorageType.File;
  const description = ownerMark(options.owner);
  // made again after NATS lost it (see `failed`) with the mark too
  const openBucket = () => new Objm(connection).create(bucket, { storage, description });
  let objects;
  let jsm;
  try {
    objects = await openBucket();
    jsm = await jetstreamManager(connection);
    await claim(jsm, { bucket, stream, owner: options.owner });
  } catch (cause) {
    await connection.close();
    if (cause instanceof ConfigError) throw cause;
    throw new MediaError("unavailable", `cannot open the object store ${bucket}`, { cause });
  }
  const store = objects;
  const manager = jsm;
  const js = jetstream(connection);
  const { metaSubject, chunkSubject } = objectSubjects(bucket);

  let remaking: Promise<void> | undefined;

  /**
   * `error` as the store answers it. A bucket NATS lost (one in memory across a server restart,
   * a store directory gone) is made again, else every later call would fail until the service
   * restarts; the call that found it missing still answers `unavailable`, retry.
   */
  function failed(error: unknown): MediaError {
    if (isStreamNotFound(error) && !remaking) {
      remaking = openBucket().then(() => {}, () => {}).finally(() => remaking = undefined);
    }
    return translate(error);
  }

  async function stored(sha256: string) {
    const info = await store.info(sha256);
    return info && !info.deleted ? info : null;
  }

  /**
   * Deletes an object: its name (no deletion marker is left: upload names are used once), then
   * its chunks. Purges only: the object store's delete() first writes a marker, which a bucket
   * at its quota refuses, so that a full bucket could not be emptied, not even by the sweeps.
   * The name first, as delete() does: an upload that finds the file stored a moment before
   * its chunks go would take them for its own.
   */
  async function discard(name: string): Promise<void> {
    const info = await store.info(name);
    await manager.streams.purge(stream, { filter: metaSubject(name) });
    if (info) await manager.streams.purge(stream, { filter: chunkSubject(info.nuid) });
  }

  /**
   * After a put that failed once its upload was written: drops the upload, as the PostgreSQL
   * store drops its rows, unless a rename may have been sent (its answer lost) and named the
   * upload's chunks `sha256`: deleting the upload then would take the file's chunks with it.
   * Best effort: NATS may well be what failed.
   */
  async function abandon(
    upload: string,
    written: { nuid: string; sha256: string; renaming: boolean },
  ): Promise<void> {
    if (written.renaming && (await stored(written.sha256))?.nuid === written.nuid) return;
    await discard(upload);
  }

  /**
   * Names an upload's chunks `sha256`: its metadata is written under that name only while the
   * name's subject is still at `revision` (0: never written). The object store's `update()`
   * checks, then writes, so uploads of the same new file at once all passed the check and all
   * renamed: the last one won, and the others' chunks were kept with nothing pointing at them.
   * Rejects with StreamWrongLastSequence when another upload named itself `sha256` first.
   */
  async function rename(upload: string, sha256: string, revision: number): Promise<void> {
    const written = await manager.streams.getMessage(stream, {
      last_by_subj: metaSubject(upload),
    });
    if (!written) throw new Error(`${upload} has no metadata`);
    const meta = { ...written.json<Record<string, unknown>>(), name: sha256 };
    await js.publish(metaSubject(sha256), JSON.stringify(meta), {
      expect: { lastSubjectSequence: revision },
    });
    // the chunks are the file's now: only the upload's name goes
    await manager.streams.purge(stream, { filter: metaSubject(upload) });
  }

  /**
   * Chunk reads waiting for their answer, each woken at the connection's next reconnect. A set
   * the reads leave, not reactions on one long-lived promise: those would pile up, one per chunk
   * served, for as long as the connection stays up.
   */
  const awaitingReconnect = new Set<() => void>();
  /** False from a disconnect to the reconnect. */
  let connected = true;
  const watching = (async () => {
    // ends when the connection closes
    for await (const status of connection.status()) {
      if (status.type === "disconnect") connected = false;
      if (status.type !== "reconnect") continue;
      connected = true;
      for (const wake of awaitingReconnect) wake();
      awaitingReconnect.clear();
    }
  })();
  /** Aborted by close(): cleanups still waiting to be tried again are left to the sweep. */
  const closing = new AbortController();

  /** Resolves at the next reconnect, after `ms` (when given), or at close(). */
  function reconnected(ms?: number): Promise<void> {
    if (closing.signal.aborted) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    const wake = () => resolve();
    const timer = ms === undefined ? undefined : setTimeout(wake, ms);
    awaitingReconnect.add(wake);
    closing.signal.addEventListener("abort", wake, { once: true });
    return promise.finally(() => {
      clearTimeout(timer);
      awaitingReconnect.delete(wake);
      closing.signal.removeEventListener("abort", wake);
    });
  }

  /**
   * Runs `work`, the deletion of what a failed upload wrote, until it succeeds: once NATS is
   * back when it is away (the object store's own cleanup is one try, which a NATS gone away
   * does not take, and its chunks would be kept until the sweep, hours later), else again
   * after CLEANUP_RETRY_MS, CLEANUP_ATTEMPTS times at most. What it leaves, the sweep deletes.
   */
  async function cleanUp(work: () => Promise<void>): Promise<void> {
    for (let attempt = 1; !closing.signal.aborted;) {
      if (!connected) {
        await reconnected();
        continue;
      }
      try {
        return await work();
      } catch {
        if (attempt++ === CLEANUP_ATTEMPTS) return;
      }
      await reconnected(connected ? CLEANUP_RETRY_MS : undefined);
    }
  }

  /**
   * The object store, for one upload, noting the subject its chunks are written to (the
   * object store names it, and says it to no one when the upload fails).
   */
  async function uploadStore(): Promise<{ objects: ObjectStore; chunks: string | undefined }> {
    // no request of its own: the object store's checks ask for the account's JetStream
    const client = jetstream(connection, { checkAPI: false });
    const noted: { chunks?: string } = {};
    const publish = client.publish.bind(client);
    const chunksOf = chunkSubject("");
    client.publish = (subject, payload, options) => {
      if (subject.startsWith(chunksOf)) noted.chunks ??= subject;
      return publish(subject, payload, options);
    };
    const objects = await new Objm(client).open(bucket, false);
    return {
      objects,
      get chunks() {
        return noted.chunks;
      },
    };
  }

  /** Deletes what a failed upload wrote that nothing names: its chunks, and its name if any. */
  async function dropUpload(upload: string, chunks: string): Promise<void> {
    await manager.streams.purge(stream, { filter: chunks });
    await manager.streams.purge(stream, { filter: metaSubject(upload) });
  }

  /**
   * A chunk by direct get, asked again (it reads, changes nothing) when the connection came back
   * before the answer: a request the dropped connection carried, or sent while it was down, is
   * never answered, and its time-out (5 s) would cut the download short.
   */
  async function chunk(request: { seq?: number; next_by_subj: string }) {
    for (let attempt = 1;; attempt++) {
      const answer = manager.direct.getMessage(stream, request);
      if (attempt === CHUNK_ATTEMPTS) return await answer;
      let wake = () => {};
      const back = new Promise<typeof BACK>((resolve) => wake = () => resolve(BACK));
      awaitingReconnect.add(wake);
      try {
        const got = await Promise.race([answer, back]);
        if (got !== BACK) return got;
        answer.catch(() => {});
      } finally {
        awaitingReconnect.delete(wake);
      }
    }
  }

  function read(
    info: { nuid: string; size: number },
    range: ByteRange | undefined,
  ): ReadableStream<Uint8Array> {
    const subject = chunkSubject(info.nuid);
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? info.size - 1, info.size - 1);
    let nextSeq: number | undefined;
    let offset = 0;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          while (offset <= end) {
            const message = await chunk(
              nextSeq === undefined ? { next_by_subj: subject } : {
                seq: nextSeq,
                next_by_subj: subject,
              },
            );
            if (!message) throw new MediaError("not_found", "a chunk of the object is missing");
            nextSeq = message.seq + 1;
            const chunkStart = offset;
            offset += message.data.length;
            if (offset <= start) continue;
            controller.enqueue(
              message.data.subarray(Math.max(0, start - chunkStart), end - chunkStart + 1),
            );
            if (offset > end) controller.close();
            return;
          }
          controller.close();
        } catch (cause) {
          controller.error(translate(cause));
        }
      },
    }, { highWaterMark: 1 });
  }

  const sweeps = options.sweep &&
    startSweeps(
      () => sweepNatsUploads({ bucket, stream, js, manager, discard }, options.sweep!.afterMs),
      options.sweep,
    );

  return {
    async put(source, ingest) {
      const upload = `${UPLOAD_PREFIX}${crypto.randomUUID()}`;
      const inspection = inspect(source, { ...ingest, chunkBytes: NATS_CHUNK_BYTES });
      // the object store hands back what our stream threw; that is not NATS failing
      let refusal: { error: unknown } | undefined;
      async function* chunks() {
        try {
          yield* inspection.chunks;
        } catch (error) {
          refusal = { error };
          throw error;
        }
      }
      const pieces = chunks();
      let written: Parameters<typeof abandon>[1] | undefined;
      let writing: Awaited<ReturnType<typeof uploadStore>> | undefined;
      try {
        writing = await uploadStore();
        // on a failing source the object store purges the chunks it wrote
        const { nuid } = await writing.objects.put(
          { name: upload, options: { max_chunk_size: NATS_CHUNK_BYTES } },
          ReadableStream.from(pieces),
        );
        const blob = inspection.result();
        written = { nuid, sha256: blob.sha256, renaming: false };
        const existing = await store.info(blob.sha256);
        if (existing && !existing.deleted) {
          await discard(upload);
          return blob;
        }
        try {
          written.renaming = true;
          await rename(upload, blob.sha256, existing?.revision ?? 0);
        } catch (error) {
          // the same file, finished a moment ago by another upload: keep that one
          if (!isWrongLastSequence(error) || !(await stored(blob.sha256))) throw error;
          await discard(upload);
        }
        return blob;
      } catch (error) {
        // The source is let go (a request body cancelled): the object store that failed reads
        // no more of it and never cancels it, and one that failed before its first read never
        // opened it, so the body was held open for good.
        pieces.return(undefined).catch(() => {});
        if (source instanceof ReadableStream && !source.locked) source.cancel().catch(() => {});
        // not waited for: a NATS that did not answer would hold the answer as long again
        const kept = written;
        const chunksAt = writing?.chunks;
        // the object store answers with the source's own error once it has purged the chunks
        const purged = refusal !== undefined && error === refusal.error;
        if (kept) void cleanUp(() => abandon(upload, kept));
        else if (chunksAt !== undefined && !purged) {
          void cleanUp(() => dropUpload(upload, chunksAt));
        }
        if (!refusal && isOutOfRoom(error)) options.onFull?.(error);
        throw refusal ? refusal.error : failed(error);
      }
    },

    async open(sha256, range) {
      try {
        const info = await stored(sha256);
        return info ? read(info, range) : null;
      } catch (error) {
        throw failed(error);
      }
    },

    async exists(sha256) {
      try {
        return (await stored(sha256)) !== null;
      } catch (error) {
        throw failed(error);
      }
    },

    async delete(sha256) {
      try {
        // its name goes too, as an upload's does: a file stored again later is new
        if (await stored(sha256)) await discard(sha256);
      } catch (error) {
        throw failed(error);
      }
    },

    async *files({ before }) {
      // `stored` is when NATS stored the file's name (the rename, once the upload was complete),
      // by NATS's clock: not `mtime`, the uploading instance's clock. A file deleted while
      // listed (by another instance's sweep) cuts the listing short: what it missed is left to
      // the next sweep, not a sweep failed. So `since` is not heeded: there is no index by time
      // to save reading every object's metadata, and the next listing must find what this missed
      const listed = objectBatches({ bucket, stream, js, manager }, { cut: "end", waitMs: 1_000 });
      try {
        for await (const objects of listed) {
          const files = objects.filter((info) =>
            !info.deleted && !isUpload(info.name) && info.stored < before.getTime()
          ).map((info) => info.name);
          if (files.length > 0) yield files;
        }
      } catch (error) {
        throw failed(error);
      }
    },

    async check(signal) {
      if (connection.isClosed() || signal?.aborted) return false;
      const { promise: givenUp, resolve: giveUp } = Promise.withResolvers<false>();
      const timer = setTimeout(() => giveUp(false), CHECK_TIMEOUT_MS);
      const onAbort = () => giveUp(false);
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        // the bucket's stream, not only the connection: a bucket NATS lost would fail every
        // call while ready (asking for it starts making it again, see `failed`)
        const bucketThere = manager.streams.info(stream).then(() => true, (error) => {
          failed(error);
          return false;
        });
        return await Promise.race([bucketThere, givenUp]);
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      }
    },

    async close(signal) {
      closing.abort();
      await sweeps?.stop();
      await remaking;
      try {
        await drainOrClose(connection, signal);
      } catch {
        // closed all the same; nothing of the store's was waiting on the drain
      }
      await watching;
    },
  };
}

/** The bucket's stream description that says whose it is. */
function ownerMark(owner: string): string {
  return `chat media of NATS_SUBJECT_PREFIX=${owner}`;
}

/**
 * Refuses the bucket when its stream's description names another deployment (or is anything
 * else: not ours to sweep); one without any, made by a release before the mark, becomes ours.
 */
async function claim(
  manager: JetStreamManager,
  { bucket, stream, owner }: { bucket: string; stream: string; owner: string },
): Promise<void> {
  const mark = ownerMark(owner);
  const { config } = await manager.streams.info(stream);
  if (config.description === mark) return;
  if (config.description) {
    throw new ConfigError(
      `invalid configuration: MEDIA_NATS_BUCKET: the bucket ${bucket} is another deployment's ` +
        `("${config.description}"), not that of NATS_SUBJECT_PREFIX=${owner}: each deployment ` +
        `deletes the files in its bucket that its database does not list, so each needs a ` +
        `MEDIA_NATS_BUCKET of its own`,
    );
  }
  await manager.streams.update(stream, { description: mark });
}

/** A conditional publish refused: the subject had moved on from the sequence it expected. */
function isWrongLastSequence(error: unknown): boolean {
  return error instanceof JetStreamApiError &&
    error.code === JetStreamApiCodes.StreamWrongLastSequence;
}

/**
 * JetStream's refusals of a write for want of room: the stream's store failed (10077: its
 * `maximum bytes exceeded`, `maximum messages exceeded`), the account's resource limits
 * (10002), the server's (10023) or its storage (10047).
 */
const OUT_OF_ROOM_CODES: ReadonlySet<number> = new Set([10077, 10002, 10023, 10047]);

function isOutOfRoom(error: unknown): boolean {
  return error instanceof JetStreamApiError && OUT_OF_ROOM_CODES.has(error.code);
}

function isStreamNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound;
}

/** Anything NATS threw is the store being out of reach; the source's MediaErrors pass. */
function translate(error: unknown): MediaError {
  if (error instanceof MediaError) return error;
  return new MediaError("unavailable", "the media store is unavailable, retry", { cause: error });
}
