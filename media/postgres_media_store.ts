import { Buffer } from "node:buffer";
import type { PendingQuery, Row, Sql } from "postgres";
import { copyIn } from "../db/copy_in.ts";
import { STORE_TIMEOUT_MS, translateDatabaseError } from "../db/errors.ts";
import { bounded, CANCEL_AHEAD_MS, cancelStatement } from "../db/statement_deadline.ts";
import { MediaError } from "./errors.ts";
import { inspect } from "./ingest.ts";
import type { ByteRange, MediaStore } from "./store.ts";
import { startSweeps, type UploadSweep } from "./upload_sweep.ts";

/** Size of one `media_chunks` row: small enough that a write holds little, big enough to be few. */
export const CHUNK_BYTES = 256 * 1024;

export interface PostgresMediaStoreOptions {
  /** Bytes per `media_chunks` row; default CHUNK_BYTES. */
  chunkBytes?: number;
  /**
   * Write with binary COPY (the default); false: INSERT per chunk, for a server without
   * `COPY FROM STDIN` (the embedded PGlite of `deno task dev`).
   */
  copy?: boolean;
  /**
   * Deletes the uploads of instances killed mid-upload, at start and then periodically until
   * close(): those whose rows were last written `afterMs` ago by the database's clock. Absent:
   * none are.
   */
  sweep?: UploadSweep;
}

/** Chunks written by one COPY: an upload reads this much before it takes a connection. */
const BATCH_BYTES = 1024 * 1024;
/** Files listed per query by files(). */
const FILES_BATCH = 1_000;
/** `substring` takes an int length; a chunk is far smaller anyway. */
const MAX_READ = 0x7fff_ffff;

/**
 * Media bytes in PostgreSQL, in `media_chunks` rows (db/migrations/0003_media.sql) keyed by
 * the blob's SHA-256 hex and each chunk's byte offset.
 *
 * Why chunk rows and not one `bytea` per file: one value must be sent whole (postgres.js sends
 * a `bytea` parameter as hex text, so a 25 MiB file is a 50 MiB string and its copy on the
 * wire, per upload); growing a value by appends rewrites it each time; and a transaction held
 * open for a slow upload would hold a pooled connection. Here an upload holds one batch of
 * chunks (1 MiB) at a time and takes a connection only to write it, and a read fetches just
 * the chunks of the range it serves. Large objects would stream too, but live outside the
 * tables (no cascade, not in logical replication, orphans need `vacuumlo`).
 *
 * A file is written under `upload:<uuid>`, then renamed to its SHA-256 in one statement, so a
 * reader never sees half a file and the same file arriving twice at once is stored once.
 */
export function createPostgresMediaStore(
  sql: Sql,
  options: PostgresMediaStoreOptions = {},
): MediaStore {
  const chunkBytes = options.chunkBytes ?? CHUNK_BYTES;
  const write = options.copy === false ? insertChunks : copyChunks;

  /**
   * Writes chunks as they are with one binary COPY. postgres.js sends a bytea parameter as
   * text (hex: twice the bytes, made anew per chunk); under ten concurrent 20 MiB uploads
   * that garbage alone doubled the service's peak memory (bench/media_memory.ts). On a
   * connection of its own and within STORE_TIMEOUT_MS (see copyIn).
   */
  function copyChunks(key: string, offset: number, chunks: Uint8Array[]): Promise<void> {
    return copyIn(
      sql,
      "copy media_chunks (blob_key, byte_offset, data) from stdin with (format binary)",
      binaryCopy(key, offset, chunks),
      { timeoutMs: STORE_TIMEOUT_MS },
    );
  }

  /** The same rows by INSERT, the bytes as base64 text (a third smaller than hex). */
  async function insertChunks(key: string, offset: number, chunks: Uint8Array[]): Promise<void> {
    for (const chunk of chunks) {
      await timed(sql`insert into media_chunks (blob_key, byte_offset, data)
                      values (${key}, ${offset}, decode(${chunk.toBase64()}, 'base64'))`);
      offset += chunk.length;
    }
  }

  async function exists(sha256: string): Promise<boolean> {
    const rows = await timed(sql`
      select 1 from media_chunks where blob_key = ${sha256} and byte_offset = 0`);
    return rows.length > 0;
  }

  function read(sha256: string, range: ByteRange | undefined): ReadableStream<Uint8Array> {
    let position = range?.start ?? 0;
    const end = range?.end ?? Number.MAX_SAFE_INTEGER;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          // the chunk holding `position`, from there to its end or the range's; in hex, as
          // postgres.js reads a bytea column in the text the server writes it in, which is not
          // hex where the database or role sets bytea_output to escape (read as a few bytes)
          const [row] = await timed(sql<Array<{ hex: string }>>`
            select encode(substring(data from (${position} - byte_offset + 1)::int
                                  for ${Math.min(end - position + 1, MAX_READ)}::int), 'hex') as hex
            from media_chunks where blob_key = ${sha256} and byte_offset <= ${position}
            order by byte_offset desc limit 1`);
          if (!row || row.hex.length === 0) return controller.close();
          const data = Uint8Array.fromHex(row.hex);
          controller.enqueue(data);
          position += data.length;
          if (position > end) controller.close();
        } catch (cause) {
          controller.error(translate(cause));
        }
      },
    }, { highWaterMark: 1 });
  }

  /** Deletes the uploads written to last before `afterMs` ago; resolves with how many. */
  async function sweepAbandoned(afterMs: number): Promise<number> {
    // the rows of one upload commit a batch at a time: the newest tells when it was last alive
    const [row] = await timed(sql<Array<{ uploads: number }>>`
      with dead as (
        select blob_key from media_chunks where blob_key like 'upload:%'
        group by blob_key having max(created_at) < now() - make_interval(secs => ${afterMs / 1000})
      ), deleted as (
        delete from media_chunks where blob_key in (select blob_key from dead)
        and blob_key like 'upload:%' returning blob_key
      )
      select count(distinct blob_key)::int as uploads from deleted`);
    return row!.uploads;
  }

  const sweeps = options.sweep &&
    startSweeps(() => sweepAbandoned(options.sweep!.afterMs), options.sweep);

  return {
    async put(source, ingest) {
      const upload = `upload:${crypto.randomUUID()}`;
      const inspection = inspect(source, { ...ingest, chunkBytes });
      let unanswered = false;
      try {
        let offset = 0;
        let batch: Uint8Array[] = [];
        let batchBytes = 0;
        for await (const chunk of inspection.chunks) {
          batch.push(chunk);
          batchBytes += chunk.length;
          if (batchBytes < BATCH_BYTES) continue;
          await write(upload, offset, batch);
          offset += batchBytes;
          batch = [];
          batchBytes = 0;
        }
        if (batch.length > 0) await write(upload, offset, batch);
        const blob = inspection.result();
        if (!(await exists(blob.sha256))) {
          try {
            await timed(
              sql`update media_chunks set blob_key = ${blob.sha256} where blob_key = ${upload}`,
            );
          } catch (error) {
            // the same file, finished a moment ago by another upload: keep that one
            if (codeOf(error) !== "23505") throw error;
          }
        }
        return blob;
      } catch (error) {
        const failure = error instanceof MediaError ? error : translate(error);
        unanswered = failure instanceof MediaError && failure.code === "unavailable";
        throw failure;
      } finally {
        // after a rename there is nothing left under the upload key. A database that did not
        // answer is not waited for again: the upload is answered, and the delete goes on.
        const deleted = timed(sql`delete from media_chunks where blob_key = ${upload}`)
          .catch(() => {});
        if (!unanswered) await deleted;
      }
    },

    async open(sha256, range) {
      try {
        return (await exists(sha256)) ? read(sha256, range) : null;
      } catch (error) {
        throw translate(error);
      }
    },

    async exists(sha256) {
      try {
        return await exists(sha256);
      } catch (error) {
        throw translate(error);
      }
    },

    async delete(sha256) {
      try {
        await timed(sql`delete from media_chunks where blob_key = ${sha256}`);
      } catch (error) {
        throw translate(error);
      }
    },

    async *files({ since, before }) {
      // a file by its first chunk, from the index media_chunks_files_by_creation alone (0021):
      // those begun since `since`, not the whole history. The rows keep the time they were
      // written at when renamed, so this is when the upload began. The cursor's time goes as text:
      // postgres.js sends a timestamptz parameter through a Date, to the millisecond
      let after: { at: string; key: string } | null = null;
      for (;;) {
        let rows: Array<{ blob_key: string; at: string }>;
        const from = since === undefined ? sql`` : sql`and created_at >= ${since}`;
        const past = after === null
          ? sql``
          : sql`and (created_at, blob_key) > (${after.at}::text::timestamptz, ${after.key})`;
        try {
          rows = await timed(sql<Array<{ blob_key: string; at: string }>>`
            select blob_key, created_at::text as at from media_chunks
            where byte_offset = 0 and blob_key not like 'upload:%' and created_at < ${before}
              ${from} ${past}
            order by created_at, blob_key limit ${FILES_BATCH}`);
        } catch (error) {
          throw translate(error);
        }
        const last = rows.at(-1);
        if (last !== undefined) yield rows.map((row) => row.blob_key);
        if (last === undefined || rows.length < FILES_BATCH) return;
        after = { at: last.at, key: last.blob_key };
      }
    },

    async check(signal) {
      const query = sql`select 1`.execute();
      const aborted = new Promise<never>((_, reject) => {
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
      try {
        await Promise.race([query, aborted]);
        return true;
      } catch {
        cancelStatement(query);
        return false;
      }
    },

    // the pool belongs to the caller
    close: async () => await sweeps?.stop(),
  };
}

/**
 * A query's rows, held to STORE_TIMEOUT_MS as the chat store's queries are: a stalled database
 * must not hold a download (and its place) or an upload's end for as long as the kernel keeps
 * the connection. Cancelled ahead of the time and answered by how it ended (see
 * db/statement_deadline.ts): a rename the cancel came too late for is a stored file.
 */
function timed<T extends readonly Row[]>(query: PendingQuery<T>): Promise<T> {
  const cancelAt = performance.now() + STORE_TIMEOUT_MS - CANCEL_AHEAD_MS;
  return bounded<T>(query, cancelAt, () => cancelStatement(query));
}

function codeOf(error: unknown): string {
  return typeof error === "object" && error !== null && "code" in error
    ? String((error as { code: unknown }).code)
    : "";
}

/** A lost or refused database as MediaError `unavailable`; anything else passes as it is. */
function translate(error: unknown): unknown {
  if (error instanceof MediaError) return error;
  if (translateDatabaseError(error).code !== "unavailable") return error;
  return new MediaError("unavailable", "the media store is unavailable, retry", { cause: error });
}

/** "PGCOPY\n\377\r\n\0" */
const COPY_SIGNATURE = Uint8Array.of(0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0);

/**
 * Rows of `media_chunks` in PostgreSQL's binary COPY format: a header, then per row the
 * field count and each field as length and bytes (text, int8, bytea as is), then -1.
 */
function* binaryCopy(key: string, offset: number, chunks: Uint8Array[]): Generator<Uint8Array> {
  // then 32-bit flags and header extension length, both 0
  const header = Buffer.alloc(COPY_SIGNATURE.length + 8);
  header.set(COPY_SIGNATURE);
  yield header;
  const keyBytes = Buffer.from(key, "utf8");
  for (const chunk of chunks) {
    const row = Buffer.alloc(2 + 4 + keyBytes.length + 4 + 8 + 4);
    let at = row.writeInt16BE(3, 0);
    at = row.writeInt32BE(keyBytes.length, at);
    at += keyBytes.copy(row, at);
    at = row.writeInt32BE(8, at);
    at = row.writeBigInt64BE(BigInt(offset), at);
    row.writeInt32BE(chunk.length, at);
    yield row;
    yield chunk;
    offset += chunk.length;
  }
  const trailer = Buffer.alloc(2);
  trailer.writeInt16BE(-1, 0);
  yield trailer;
}

/**
 * The store on `tx`, a transaction's own connection: for the sweep of unsent media in the
 * embedded PGlite, where a statement on another connection waits for the transaction to end
 * (db/media_retention.ts: MediaBytesWithin).
 */
export function postgresMediaStoreWithin(tx: Sql): MediaStore {
  return createPostgresMediaStore(tx, { copy: false });
}
