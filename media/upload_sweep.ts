import { STORE_TIMEOUT_MS } from "../db/errors.ts";

/** The longest between two sweeps: a dead upload's bytes are kept at most this much longer. */
const SWEEP_AT_MOST_EVERY_MS = 60 * 60 * 1000;

/** When a periodic sweep runs, and who hears of what it did. */
export interface SweepSchedule {
  /** What a sweep deletes is at least this old: it runs every half of it, an hour at most. */
  afterMs: number;
  /** Told how many things a sweep deleted, when it deleted any. */
  onSwept(deleted: number): void;
  onError(error: unknown): void;
}

/** The media store's sweep of uploads: one not written to for `afterMs` is dead (see abandonedUploadMs). */
export type UploadSweep = SweepSchedule;

/**
 * How long after its last write an upload is surely dead, from the limits every instance
 * sharing the media store holds its uploads to (they must agree, or one instance's sweep may
 * take another's live upload). A body is ended when it falls behind `minBytesPerSecond` after
 * `idleMs` of grace (ws/stalled_body.ts), so the client's share of an upload of the largest
 * size is at most `idleMs + largest / minBytesPerSecond` (25 MiB at 2 KiB/s: 3.6 h); each of
 * the store's own steps after a write (the next write, the look-up, the rename) takes at most
 * STORE_TIMEOUT_MS. Twice that, for a clock that jumps or a process that stalls.
 */
export function abandonedUploadMs(
  limits: { largest: number; idleMs: number; minBytesPerSecond: number },
): number {
  const clientMs = limits.idleMs + (limits.largest / limits.minBytesPerSecond) * 1000;
  return 2 * (clientMs + 3 * STORE_TIMEOUT_MS);
}

/**
 * Runs `sweep` now, then every half of `afterMs` (an hour at most) until stopped: the uploads
 * of an instance that was killed (one that shuts down deletes its own), or unsent media
 * (unsent_media_sweep.ts), go within that much of being due. `sweep` resolves with how many
 * things it deleted; a failed sweep is reported and the next one tries again. Its signal aborts
 * when the sweeps are stopped: a long sweep ends at its next step rather than hold the shutdown.
 */
export function startSweeps(
  sweep: (signal: AbortSignal) => Promise<number>,
  options: SweepSchedule,
) {
  const everyMs = Math.min(options.afterMs / 2, SWEEP_AT_MOST_EVERY_MS);
  const stopping = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  let running: Promise<void> = Promise.resolve();

  function run() {
    running = sweep(stopping.signal).then((deleted) => {
      if (deleted > 0) options.onSwept(deleted);
    }, options.onError).finally(() => {
      if (!closed) timer = setTimeout(run, everyMs);
    });
  }

  run();
  return {
    /** Stops sweeping; resolves once a sweep under way has ended. */
    async stop(): Promise<void> {
      closed = true;
      clearTimeout(timer);
      stopping.abort();
      await running;
    },
  };
}
