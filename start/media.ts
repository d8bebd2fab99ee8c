import type { MediaPort } from "../chat/ports.ts";
import type { Config } from "../config.ts";
import { largestLimit } from "../media/kinds.ts";
import { createMediaPort } from "../media/media_port.ts";
import { createNatsMediaStore } from "../media/nats_media_store.ts";
import {
  createPostgresMediaStore,
  postgresMediaStoreWithin,
} from "../media/postgres_media_store.ts";
import type { MediaStore } from "../media/store.ts";
import { sweepUnsentMedia } from "../media/unsent_media_sweep.ts";
import { abandonedUploadMs, startSweeps, type UploadSweep } from "../media/upload_sweep.ts";
import { logger } from "../observability/log.ts";
import type { Metrics } from "../observability/metrics.ts";
import { type ShutdownSequence, untilDeadline } from "../shutdown.ts";
import type { Database } from "./database.ts";
import { logError } from "./log_error.ts";

/** Where media bytes are kept, and the chat domain's port over it. */
export interface Media {
  store: MediaStore;
  port: MediaPort;
}

/**
 * Opens the media store of MEDIA_BACKEND and starts the sweep of media never sent. Each adds to
 * `shutdown` the step that stops it, once started: the sweep stops, then the store closes.
 * Rejects with a ConfigError for a NATS bucket another deployment uses.
 */
export async function openMedia(
  config: Config,
  shutdown: ShutdownSequence,
  deps: { database: Database; metrics: Metrics; instanceId: string },
): Promise<Media> {
  const { metrics, instanceId } = deps;
  const { sql, embedded } = deps.database;
  const mediaLimits = {
    image: config.MEDIA_MAX_IMAGE_BYTES,
    audio: config.MEDIA_MAX_AUDIO_BYTES,
    video: config.MEDIA_MAX_VIDEO_BYTES,
  };
  // the uploads of instances killed mid-upload, deleted once surely dead
  const sweep: UploadSweep = {
    afterMs: abandonedUploadMs({
      largest: largestLimit(mediaLimits),
      idleMs: config.MEDIA_UPLOAD_IDLE_SECONDS * 1000,
      minBytesPerSecond: config.MEDIA_UPLOAD_MIN_BYTES_PER_SECOND,
    }),
    onSwept: (uploads) => metrics.mediaUploadsSwept.inc(uploads),
    onError: (error) => logError(error, "media upload sweep"),
  };
  const mediaStore = config.MEDIA_BACKEND === "nats"
    ? await createNatsMediaStore({
      servers: config.NATS_URL!,
      bucket: config.MEDIA_NATS_BUCKET,
      owner: config.NATS_SUBJECT_PREFIX,
      name: `chat-media-${instanceId.slice(0, 8)}`,
      sweep,
      // answered 503 as any NATS failure; PostgreSQL's disk full is an error logged too
      onFull: (error) => logError(error, "media upload to a full NATS bucket"),
    })
    : createPostgresMediaStore(sql, {
      // PGlite's socket server has no COPY FROM STDIN
      copy: !embedded,
      sweep,
    });
  // The NATS store's drain gets no answer from a NATS that stalled: it must not hold the
  // steps after it (the bus's drain, which records such an outage) past the deadline. A share
  // of what is left at least, as for the bus: a close that needs a moment still gets it.
  shutdown.add(async (deadline) => {
    const bound = shutdown.notBefore(deadline, 0.25);
    // past it the store's connection is closed, not left to reconnect after the shutdown
    await untilDeadline(mediaStore.close(bound), bound, "media store close");
  });
  // Media never sent, deleted once past its retention; and (once a day) files no catalogue row
  // names, once begun longer ago than an upload may last. Pushed after the store's close, so
  // that it stops first: a sweep under way still has the store and the pool.
  const retentionMs = config.MEDIA_UNSENT_RETENTION_HOURS * 3600_000;
  // every series from the start, at 0: a series that first appears at 1 hides that increase
  for (const deleted of ["media", "blobs", "files"] as const) {
    metrics.mediaUnsentSwept.inc({ deleted }, 0);
  }
  const unsentSweeps = startSweeps(async (signal) => {
    const swept = await sweepUnsentMedia(sql, mediaStore, {
      // ages, measured on the database's clock: rows' created_at is its now(), not ours
      before: { ageMs: retentionMs },
      signal,
      uncataloguedBefore: { ageMs: sweep.afterMs },
      // counted as they go: a sweep that fails later has deleted them all the same
      onDeleted: (deleted, count) => metrics.mediaUnsentSwept.inc({ deleted }, count),
      // PGlite runs one connection's transaction at a time: the bytes go on the sweep's own
      ...(embedded && config.MEDIA_BACKEND !== "nats"
        ? { storeWithin: postgresMediaStoreWithin }
        : {}),
    });
    if (swept.skipped) {
      metrics.mediaUnsentSweepsSkipped.inc();
      logger("media").debug("sweep of unsent media skipped: another instance's is under way");
      return 0;
    }
    return swept.media + swept.blobs + swept.files;
  }, {
    afterMs: retentionMs,
    onSwept: (deleted) => logger("media").info("deleted unsent media", { rows_and_files: deleted }),
    onError: (error) => logError(error, "sweep of unsent media"),
  });
  // stopped, a sweep ends after the blob it is deleting; one the database or the media store
  // holds up is left at the deadline (its transaction ends with the pool's)
  shutdown.add(async (deadline) => {
    await untilDeadline(unsentSweeps.stop(), deadline, "sweep of unsent media");
  });
  return { store: mediaStore, port: createMediaPort(mediaStore, { limits: mediaLimits }) };
}
