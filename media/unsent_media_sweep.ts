import type { Sql } from "postgres";
import {
  blobsOfDeletedMedia,
  databaseNow,
  deleteExpiredUnsentMedia,
  deleteUncataloguedFiles,
  deleteUnnamedBlob,
  markFullPass,
  markMediaExamined,
  type MediaBytesWithin,
  type MediaCursor,
  readMediaSweepMarks,
  releaseSweepLease,
  renewSweepLease,
  takeSweepLease,
  unnamedBlobs,
} from "../db/media_retention.ts";
import type { MediaStore } from "./store.ts";

/** Rows deleted, or blobs listed, per statement: a sweep never holds many locks at once. */
const BATCH = 500;

/**
 * How long a sweep's lease lasts unless renewed (every third of it while the sweep runs): the
 * longest the sweeps stop after an instance died in the middle of one.
 */
const LEASE_MS = 5 * 60_000;

/** What one sweep deleted. */
export interface UnsentMediaSwept {
  /** Rows of `media` no message carried, older than the retention. */
  media: number;
  /** Blobs no media row named any more: catalogue row and bytes. */
  blobs: number;
  /** Files stored before `uncataloguedBefore` that no catalogue row named: their bytes. */
  files: number;
  /** Present when another sweep held the lease: this one did nothing (and deleted nothing). */
  skipped?: true;
}

/** What a sweep deletes, as UnsentMediaSwept counts it. */
export type DeletedKind = "media" | "blobs" | "files";

/**
 * A cutoff of the sweep, on the database's clock, as the times it compares are (media rows'
 * `created_at` and the marks are the database's `now()`): an age, measured back from the
 * database's `now()` as the sweep begins (main.ts: so that an instance whose clock runs ahead
 * of the database's does not delete an upload younger than the retention), or a time read off
 * that clock.
 */
export type SweepCutoff = { ageMs: number } | Date;

/**
 * Deletes the media uploaded before `options.before` that no message carries (a deleted
 * message's media stays: the message still names it), then every blob no media row names any
 * more, its catalogue row and its bytes in `store`. Without it, any user could fill the media
 * store by uploading and never sending. Then the bytes of every file in `store` whose writing
 * began before `options.uncataloguedBefore` and that has no catalogue row: stored by an instance
 * that died (or whose insert failed) before it wrote that row, they would be kept for good. That
 * time must be one by which an upload is surely over (main.ts: abandonedUploadMs, as for the
 * uploads the media store sweeps), not the retention: that may be shorter than a slow upload.
 *
 * Each step looks at what is new since the last sweep, not at the whole history (the marks in
 * the table media_sweep, migration 0022): the media rows created since the last sweep's cutoff
 * (less MARGIN_MS), and those it skipped as locked; the blobs of the media rows deleted since,
 * noted with each deletion. Once a day (FULL_PASS_EVERY_MS) it also goes through every blob no
 * media row names (one deleted by hand, or before the notes began) and the stored files begun
 * since the last such pass (every file, for a store with no index by time: NATS).
 * Safe beside sends, uploads and the sweeps of other instances: see db/media_retention.ts. A
 * failure ends the sweep (a blob whose bytes did not go keeps its catalogue row); the next one
 * takes up what is left. So does `options.signal` aborting (the service stops): the sweep
 * resolves with what it did before its next step, as the first sweep after a long outage or a
 * first deploy may have thousands of blobs to delete.
 *
 * One sweep at a time, across instances: it holds a lease in media_sweep for its length
 * (takeSweepLease), renewed as it goes and given up at its end, even a failed one; an instance
 * that dies in the middle of one holds the others off for LEASE_MS at most. A sweep that finds
 * the lease held does nothing and resolves `skipped`: its instance's next one may find it free.
 * One that loses its lease (its renewal found another holder: it had run out) stops as if
 * aborted. The queries stay safe beside each other all the same.
 *
 * Both cutoffs are on the database's clock (SweepCutoff), never this instance's: an instance
 * whose clock runs ahead would otherwise delete uploads younger than the retention. The NATS
 * store compares `uncataloguedBefore` with when the NATS server stored each file, by its clock:
 * a skew between that and the database's moves that cutoff by as much, well within the doubled
 * margin of abandonedUploadMs.
 */
export async function sweepUnsentMedia(
  sql: Sql,
  store: MediaStore,
  options: {
    before: SweepCutoff;
    uncataloguedBefore: SweepCutoff;
    signal?: AbortSignal;
    /**
     * Told of each deletion as it is made: what a sweep that fails later deleted all the same
     * (its result is then lost with the failure).
     */
    onDeleted?: (kind: DeletedKind, count: number) => void;
    /**
     * `store` on a transaction's own connection, for a store in the embedded PGlite database
     * the sweep's transactions are in (see MediaBytesWithin). Absent: `store`, on its own.
     */
    storeWithin?: MediaBytesWithin;
  },
): Promise<UnsentMediaSwept> {
  const swept = await alone(sql, async (lost) => {
    // one reading of the database's clock for both cutoffs (and so for the marks)
    const now = (await databaseNow(sql)).getTime();
    const at = (cutoff: SweepCutoff) =>
      cutoff instanceof Date ? cutoff : new Date(now - cutoff.ageMs);
    return await sweep(sql, store, {
      before: at(options.before),
      uncataloguedBefore: at(options.uncataloguedBefore),
      signal: options.signal === undefined ? lost : AbortSignal.any([options.signal, lost]),
      onDeleted: options.onDeleted,
      bytes: options.storeWithin ?? (() => store),
    });
  });
  return swept ?? { media: 0, blobs: 0, files: 0, skipped: true };
}

/**
 * Runs `work` under the sweep's lease; undefined, without running it, when another sweep holds
 * it. Tried, not waited for: the others have nothing to add to a sweep under way. `work` is
 * given a signal that aborts if the lease is lost.
 */
async function alone<T>(
  sql: Sql,
  work: (lost: AbortSignal) => Promise<T>,
): Promise<T | undefined> {
  const holder = crypto.randomUUID();
  if (!await takeSweepLease(sql, holder, LEASE_MS)) return undefined;
  const lost = new AbortController();
  let renewing: Promise<void> = Promise.resolve();
  const renewals = setInterval(() => {
    renewing = renewSweepLease(sql, holder, LEASE_MS).then(
      (held) => {
        if (!held) lost.abort();
      },
      // the database away: the sweep's own queries fail too, and say so
      () => {},
    );
  }, LEASE_MS / 3);
  try {
    return await work(lost.signal);
  } finally {
    clearInterval(renewals);
    await renewing;
    // the database away: the lease runs out by itself
    await releaseSweepLease(sql, holder).catch(() => {});
  }
}

/**
 * How far before its mark a pass looks again: at a row written by a transaction begun before the
 * mark and committed after that pass (its `created_at` is when it began).
 */
const MARGIN_MS = 10 * 60_000;

/** Between two passes over every unnamed blob and the stored files: only a crash leaves them. */
const FULL_PASS_EVERY_MS = 24 * 3600_000;

async function sweep(
  sql: Sql,
  store: MediaStore,
  options: {
    before: Date;
    uncataloguedBefore: Date;
    signal?: AbortSignal | undefined;
    onDeleted?: ((kind: DeletedKind, count: number) => void) | undefined;
    bytes: MediaBytesWithin;
  },
): Promise<UnsentMediaSwept> {
  const stopped = () => options.signal?.aborted === true;
  const swept = { media: 0, blobs: 0, files: 0 };
  const deleted = (kind: DeletedKind, count: number) => {
    swept[kind] += count;
    if (count > 0) options.onDeleted?.(kind, count);
  };
  const marks = await readMediaSweepMarks(sql);
  const earlier = (mark: Date | null) => mark && new Date(mark.getTime() - MARGIN_MS);
  // the rows that became old enough since the last sweep, and those it skipped
  const since = earlier(marks.mediaExaminedBefore);
  let after: MediaCursor | null = null;
  let firstSkipped: string | null = null;
  let looked: string | null = null;
  while (!stopped()) {
    const batch = await deleteExpiredUnsentMedia(sql, {
      since,
      after,
      before: options.before,
      limit: BATCH,
    });
    deleted("media", batch.deleted);
    firstSkipped ??= batch.firstSkipped;
    after = batch.last ?? after;
    looked = after?.at ?? null;
    if (batch.unsent < BATCH) {
      looked = options.before.toISOString();
      break;
    }
  }
  // a row skipped (a send naming it, maybe to roll back) is looked at again by the next sweep
  const mark = firstSkipped ?? looked;
  if (mark !== null) await markMediaExamined(sql, mark);
  // the blobs of the rows deleted, by this sweep or before (one cut short, a repeated send's
  // base64: see discardRetriedMedia), noted with the deletion
  const deleteBlobs = async (list: (after: string | null) => Promise<string[]>) => {
    for (let after: string | null = null; !stopped();) {
      const blobs = await list(after);
      for (const sha256 of blobs) {
        if (stopped()) return;
        const deleteBytes = (tx: Sql) => options.bytes(tx).delete(sha256);
        if (await deleteUnnamedBlob(sql, sha256, deleteBytes)) deleted("blobs", 1);
      }
      if (blobs.length < BATCH) return;
      after = blobs.at(-1)!;
    }
  };
  await deleteBlobs((after) => blobsOfDeletedMedia(sql, { after, limit: BATCH }));
  if (stopped() || (marks.sinceFullPassMs ?? Infinity) < FULL_PASS_EVERY_MS) return swept;
  // once a day, every unnamed blob (a row deleted by hand, or before the notes began), and the
  // stored files begun since the last such pass that no catalogue row names
  if (stopped()) return swept;
  await deleteBlobs((after) => unnamedBlobs(sql, { after, limit: BATCH }));
  const filesSince = earlier(marks.filesListedBefore);
  const listing = filesSince === null
    ? { before: options.uncataloguedBefore }
    : { since: filesSince, before: options.uncataloguedBefore };
  for await (const files of store.files(listing)) {
    if (stopped()) return swept;
    // each file counted as it goes: a failure at a later one has not brought it back
    const onDeleted = () => deleted("files", 1);
    await deleteUncataloguedFiles(sql, files, options.bytes, {
      signal: options.signal,
      onDeleted,
    });
  }
  if (!stopped()) await markFullPass(sql, options.uncataloguedBefore);
  return swept;
}
