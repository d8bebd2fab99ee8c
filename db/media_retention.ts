import type { Sql } from "postgres";
import { transaction } from "./transactions.ts";

/**
 * The queries of the sweep of unsent media (media/unsent_media_sweep.ts). Each deletion holds
 * the rows it deletes locked, so that what uses them meanwhile waits for it and then finds them
 * gone, never half gone: a message naming a media row (the foreign key from `messages` takes a
 * key-share lock on it, which `for update` excludes), a media row naming a blob (likewise from
 * `media` on `media_blobs`). Rows locked by such a writer are skipped, not waited for; so are
 * those another sweep holds (one runs at a time, but a lease run out while its sweep still runs
 * lets in a second). The sweep's marks and its list of blobs to look at are in `media_sweep` and
 * `media_sweep_blobs` (migration 0022).
 */

/**
 * Where a pass over media rows, in (created_at, id) order, has got to. `at` is exact, as text
 * (and sent as text: postgres.js sends a timestamptz parameter through a Date, to the ms).
 */
export interface MediaCursor {
  at: string;
  id: string;
}

/** What one batch of the rows pass did. */
export interface ExpiredMediaBatch {
  /** Rows deleted. */
  deleted: number;
  /** Rows found that no message carries: fewer than the limit, and the pass is at its end. */
  unsent: number;
  /** The last row looked at; null when there were none left before `before`. */
  last: MediaCursor | null;
  /** The creation time (exact, as text) of the first row skipped as locked; null for none. */
  firstSkipped: string | null;
}

/**
 * Of the media rows created from `since` (null: from the first) to before `before`, after
 * `after`, in (created_at, id) order, takes the first `limit` that no message carries (a deleted
 * message still does) and deletes those it can lock, noting each one's blob in
 * `media_sweep_blobs` (it may be named by none now). A send naming one of
 * them waits for this transaction and then fails on the foreign key (db/postgres_store.ts
 * answers it as an unknown media id); one locked already (a send under way, another sweep) is
 * skipped, and told in `firstSkipped`, so that the pass does not count it as looked at.
 * The rows are found by unsentMedia.
 */
export async function deleteExpiredUnsentMedia(
  sql: Sql,
  options: { since: Date | null; after: MediaCursor | null; before: Date; limit: number },
): Promise<ExpiredMediaBatch> {
  return await transaction(sql, async (tx) => {
    const unsent = await unsentMedia(tx, options);
    const last = unsent.at(-1);
    if (last === undefined) return { deleted: 0, unsent: 0, last: null, firstSkipped: null };
    const locked = await tx<Array<{ id: string }>>`
      select id from media where id = any(${unsent.map((row) => row.id)}::uuid[])
      for update skip locked`;
    const held = new Set(locked.map((row) => row.id));
    const firstSkipped = unsent.find((row) => !held.has(row.id))?.at ?? null;
    if (locked.length === 0) return { deleted: 0, unsent: unsent.length, last, firstSkipped };
    // asked again now that no new message can name them: one sent between the statement
    // above's snapshot and its lock is seen here, and keeps its media
    const [{ deleted }] = await tx<[{ deleted: number }]>`
      with gone as (
        delete from media m where id = any(${[...held]}::uuid[])
          and not exists (select 1 from messages where media_id = m.id)
        returning sha256
      ), noted as (
        insert into media_sweep_blobs select distinct sha256 from gone on conflict do nothing
      )
      select count(*)::int as deleted from gone`;
    return { deleted, unsent: unsent.length, last, firstSkipped };
  });
}

/**
 * The first `limit` media rows, in (created_at, id) order, created from `since` (null: from the
 * first) to before `before` and after `after`, that no message carries; their creation time
 * exact, as text. A range of the index `media_by_creation`, each row asked of `messages_by_media`.
 */
export async function unsentMedia(
  sql: Sql,
  options: { since: Date | null; after: MediaCursor | null; before: Date; limit: number },
): Promise<Array<{ id: string; at: string }>> {
  const { since, after } = options;
  const from = since === null ? sql`` : sql`and created_at >= ${since}`;
  const past = after === null
    ? sql``
    : sql`and (created_at, id) > (${after.at}::text::timestamptz, ${after.id}::uuid)`;
  return await sql<Array<{ id: string; at: string }>>`
    select id, created_at::text as at from media m
    where created_at < ${options.before} ${from} ${past}
      and not exists (select 1 from messages where media_id = m.id)
    order by created_at, id limit ${options.limit}`;
}

/**
 * The database's clock now: what the sweep's cutoffs are measured back from, as the times it
 * compares them with (`created_at`, the marks) are the database's `now()` too.
 */
export async function databaseNow(sql: Sql): Promise<Date> {
  const [row] = await sql<[{ now: Date }]>`select now() as now`;
  return row.now;
}

/**
 * Takes the lease of the sweep for `ms` (renewed with renewSweepLease) as `holder`: true, unless
 * another sweep holds one that has not run out. A lease, not a lock held on a connection: a
 * reserved connection that is lost while it waits must not be queried again (postgres.js
 * 3.4.9 then throws outside any promise, porsager/postgres#1208), and it could not be known
 * lost without querying it.
 */
export async function takeSweepLease(sql: Sql, holder: string, ms: number): Promise<boolean> {
  const taken = await sql`
    update media_sweep set lease_holder = ${holder},
                           lease_until = now() + make_interval(secs => ${ms / 1000})
    where lease_until is null or lease_until < now()`;
  return taken.count > 0;
}

/** Extends `holder`'s lease by `ms` from now; false when it is no longer theirs. */
export async function renewSweepLease(sql: Sql, holder: string, ms: number): Promise<boolean> {
  const renewed = await sql`
    update media_sweep set lease_until = now() + make_interval(secs => ${ms / 1000})
    where lease_holder = ${holder}`;
  return renewed.count > 0;
}

/** Gives `holder`'s lease up, if it still has it. */
export async function releaseSweepLease(sql: Sql, holder: string): Promise<void> {
  await sql`update media_sweep set lease_holder = null, lease_until = null
            where lease_holder = ${holder}`;
}

/** How far the rows pass has looked, and when the last full pass ended: see 0022. */
export interface MediaSweepMarks {
  /** Every media row created before this has been looked at; null: none has. */
  mediaExaminedBefore: Date | null;
  /** Milliseconds since the last pass over every blob and stored file ended; null: never. */
  sinceFullPassMs: number | null;
  /** Every stored file begun before this has been listed; null: none has. */
  filesListedBefore: Date | null;
}

export async function readMediaSweepMarks(sql: Sql): Promise<MediaSweepMarks> {
  const [row] = await sql<
    [{ media: Date | null; since_full_ms: number | null; files: Date | null }?]
  >`
    select media_examined_before as media, files_listed_before as files,
           (extract(epoch from now() - full_pass_at) * 1000)::float8 as since_full_ms
    from media_sweep`;
  return {
    mediaExaminedBefore: row?.media ?? null,
    sinceFullPassMs: row?.since_full_ms ?? null,
    filesListedBefore: row?.files ?? null,
  };
}

/** Records that every media row created before `before` (exact, as text) has been looked at. */
export async function markMediaExamined(sql: Sql, before: string): Promise<void> {
  await sql`update media_sweep set media_examined_before = ${before}::text::timestamptz`;
}

/** Records that a full pass ended now, having listed the files begun before `filesBefore`. */
export async function markFullPass(sql: Sql, filesBefore: Date): Promise<void> {
  await sql`update media_sweep set full_pass_at = now(), files_listed_before = ${filesBefore}`;
}

/** Up to `limit` blobs whose media rows were deleted, by SHA-256 hex in order, after `after`. */
export async function blobsOfDeletedMedia(
  sql: Sql,
  options: { after: string | null; limit: number },
): Promise<string[]> {
  const rows = await sql<Array<{ sha256: string }>>`
    select encode(sha256, 'hex') as sha256 from media_sweep_blobs
    ${options.after === null ? sql`` : sql`where sha256 > decode(${options.after}, 'hex')`}
    order by sha256 limit ${options.limit}`;
  return rows.map((row) => row.sha256);
}

/** Up to `limit` blobs no media row names, by SHA-256 hex in order, after `after` if given. */
export async function unnamedBlobs(
  sql: Sql,
  options: { after: string | null; limit: number },
): Promise<string[]> {
  const rows = await sql<Array<{ sha256: string }>>`
    select encode(sha256, 'hex') as sha256 from media_blobs b
    where not exists (select 1 from media m where m.sha256 = b.sha256)
      ${options.after === null ? sql`` : sql`and sha256 > decode(${options.after}, 'hex')`}
    order by b.sha256 limit ${options.limit}`;
  return rows.map((row) => row.sha256);
}

/** The bytes of a media store, as seen from a transaction of the sweep. */
export interface MediaBytes {
  exists(sha256: string): Promise<boolean>;
  delete(sha256: string): Promise<void>;
}

/**
 * The media store a transaction of the sweep deletes bytes through, given that transaction: the
 * store itself, whatever `tx` (on its own connections, or NATS); or, when the media store is
 * the database itself and that is the embedded PGlite of `deno task dev` (one connection runs at
 * a time, and while one is in a transaction every other waits for its end), the store on `tx`:
 * on a connection of the pool, the bytes' statements would wait for the transaction that waits
 * for them, until the store timeout fails both.
 */
export type MediaBytesWithin = (tx: Sql) => MediaBytes;

/**
 * Deletes the catalogue row of a blob no media row names, and then, before that commits, its
 * bytes (`deleteBytes`, given the transaction: see {@link MediaBytesWithin}); resolves with
 * whether it did. An upload that reused the bytes and is
 * naming the blob meanwhile either holds the row (skipped) or waits for this transaction and
 * then writes the row anew (see insertMedia), finding the bytes gone. When `deleteBytes`
 * fails, the row stays for the next sweep. The blob leaves `media_sweep_blobs` in the same
 * transaction once looked at (deleted, named, or gone already), not when skipped.
 */
export async function deleteUnnamedBlob(
  sql: Sql,
  sha256: string,
  deleteBytes: (tx: Sql) => Promise<void>,
): Promise<boolean> {
  return await transaction(sql, async (tx) => {
    const [locked] = await tx`
      select 1 from media_blobs where sha256 = decode(${sha256}, 'hex') for update skip locked`;
    if (!locked) {
      const [there] = await tx`select 1 from media_blobs where sha256 = decode(${sha256}, 'hex')`;
      if (!there) await tx`delete from media_sweep_blobs where sha256 = decode(${sha256}, 'hex')`;
      return false;
    }
    await tx`delete from media_sweep_blobs where sha256 = decode(${sha256}, 'hex')`;
    const deleted = await tx`
      delete from media_blobs b where sha256 = decode(${sha256}, 'hex')
        and not exists (select 1 from media m where m.sha256 = b.sha256)`;
    if (deleted.count === 0) return false;
    await deleteBytes(tx);
    return true;
  });
}

/** A file's name in a media store: its SHA-256 in hex. */
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Of the files `sha256s`, deletes the bytes (from `bytes`, a media store given the transaction:
 * see {@link MediaBytesWithin}) of each that no
 * catalogue row names; resolves with how many. Meant for files stored long enough ago that the upload which stored
 * one has written its catalogue row, if ever it will (the instance died, or the insert failed).
 *
 * An upload may meanwhile have found such bytes stored and be about to name them (insertMedia).
 * So the catalogue rows are asked for first without a lock (most pages have none missing), then
 * written for the files found without, as placeholders only this transaction sees: an insert of
 * the same row by an upload waits for it (the primary key), so the bytes of each file written
 * here go before any upload can name them, and that upload then finds them gone and is refused
 * to send them again (chat/media.ts); a file another transaction catalogued first is skipped.
 * The placeholders are deleted before the commit. When the store fails, nothing is deleted from
 * the catalogue and the next sweep tries again. Once `options.signal` aborts (the service stops)
 * no further file is deleted: a page is up to a thousand files, each a few round trips to the
 * store; those left are the next full pass's. `options.onDeleted` is told of each file as its
 * bytes go: those deleted before a failure are gone all the same, and the count is lost with it.
 */
export async function deleteUncataloguedFiles(
  sql: Sql,
  sha256s: string[],
  bytes: MediaBytesWithin,
  options: { signal?: AbortSignal | undefined; onDeleted?: (() => void) | undefined } = {},
): Promise<number> {
  // in order: sweeps of several instances hold the same rows in the same order, and never
  // wait for each other in a circle
  const files = sha256s.filter((sha256) => SHA256_HEX.test(sha256)).sort();
  if (files.length === 0) return 0;
  const missing = await sql<Array<{ sha256: string }>>`
    select sha256 from unnest(${files}::text[]) as file (sha256)
    where not exists (select 1 from media_blobs where sha256 = decode(file.sha256, 'hex'))`;
  if (missing.length === 0) return 0;
  return await transaction(sql, async (tx) => {
    const held = await tx<Array<{ sha256: string }>>`
      insert into media_blobs (sha256, mime_type, size)
      select decode(sha256, 'hex'), '', 0 from unnest(${missing.map((row) => row.sha256)}::text[])
        as file (sha256) order by sha256
      on conflict (sha256) do nothing
      returning encode(sha256, 'hex') as sha256`;
    if (held.length === 0) return 0;
    const heldFiles = held.map((row) => row.sha256);
    let deleted = 0;
    for (const sha256 of heldFiles) {
      if (options.signal?.aborted) break;
      // another instance's sweep may have held it first, and deleted it meanwhile
      const store = bytes(tx);
      if (!(await store.exists(sha256))) continue;
      await store.delete(sha256);
      deleted++;
      options.onDeleted?.();
    }
    await tx`delete from media_blobs where sha256 in (
               select decode(sha256, 'hex') from unnest(${heldFiles}::text[]) as file (sha256))`;
    return deleted;
  });
}
