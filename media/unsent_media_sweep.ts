import type { Sql } from "postgres";
import {
  deleteExpiredUnsentMedia,
  deleteUncataloguedFiles,
  deleteUnnamedBlob,
  unnamedBlobs,
} from "../db/media_retention.ts";
import type { MediaStore } from "./store.ts";

/** Rows deleted, or blobs listed, per statement: a sweep never holds many locks at once. */
const BATCH = 500;

/** What one sweep deleted. */
export interface UnsentMediaSwept {
  /** Rows of `media` no message carried, older than the retention. */
  media: number;
  /** Blobs no media row named any more: catalogue row and bytes. */
  blobs: number;
  /** Files stored before `uncataloguedBefore` that no catalogue row named: their bytes. */
  files: number;
}

/**
 * Deletes the media uploaded before `options.before` that no message carries (a deleted
 * message's media stays: the message still names it), then every blob no media row names any
 * more, its catalogue row and its bytes in `store`. Without it, any user could fill the media
 * store by uploading and never sending. Then the bytes of every file in `store` whose writing
 * began before `options.uncataloguedBefore` and that has no catalogue row: stored by an instance
 * that died (or whose insert failed) before it wrote that row, they would be kept for good. That
 * time must be one by which an upload is surely over (main.ts: abandonedUploadMs, as for the
 * uploads the media store sweeps), not the retention: that may be shorter than a slow upload.
 * Safe beside sends, uploads and the sweeps of other instances: see db/media_retention.ts. A
 * failure ends the sweep (a blob whose bytes did not go keeps its catalogue row); the next one
 * takes up what is left. So does `options.signal` aborting (the service stops): the sweep
 * resolves with what it did before its next step, as the first sweep after a long outage or a
 * first deploy may have thousands of blobs to delete.
 */
export async function sweepUnsentMedia(
  sql: Sql,
  store: MediaStore,
  options: { before: Date; uncataloguedBefore: Date; signal?: AbortSignal },
): Promise<UnsentMediaSwept> {
  const stopped = () => options.signal?.aborted === true;
  const swept = { media: 0, blobs: 0, files: 0 };
  while (!stopped()) {
    const deleted = await deleteExpiredUnsentMedia(sql, { before: options.before, limit: BATCH });
    swept.media += deleted;
    if (deleted < BATCH) break;
  }
  // every unnamed blob, not only those of the rows just deleted: a sweep cut short, or a row
  // deleted by other means (a repeated send's base64, see discardRetriedMedia), leaves some
  for (let after: string | null = null; !stopped();) {
    const blobs: string[] = await unnamedBlobs(sql, { after, limit: BATCH });
    for (const sha256 of blobs) {
      if (stopped()) return swept;
      if (await deleteUnnamedBlob(sql, sha256, () => store.delete(sha256))) swept.blobs++;
    }
    if (blobs.length < BATCH) break;
    after = blobs.at(-1)!;
  }
  for await (const files of store.files({ before: options.uncataloguedBefore })) {
    if (stopped()) return swept;
    swept.files += await deleteUncataloguedFiles(sql, files, store);
  }
  return swept;
}
