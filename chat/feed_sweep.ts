import type { RecentWindow } from "./ports.ts";

/**
 * The feed's periodic look at the store, every `periodMs`, for what was stored but never heard
 * on the bus: the sender's instance lost the database's answer after the commit (so it never
 * published; a deletion done again changes nothing and publishes nothing), or the bus dropped
 * the publish. Messages have a seq, but no later message may come to show the gap; edits and
 * deletions have none. What is in flight at one sweep is left to the bus until the next.
 */
export function startFeedSweeps(
  deps: {
    /** Each followed chat's last delivered seq. */
    followed: () => ReadonlyMap<string, number>;
    lastSeqs: (chatIds: readonly string[]) => Promise<Map<string, number>>;
    /**
     * Delivers the chats' messages from the store after the last delivered, up to their seq in
     * `upTo`; resolves with how many, and the first read that failed.
     */
    deliverStored: (
      upTo: ReadonlyMap<string, number>,
      chatIds: readonly string[],
    ) => Promise<{ delivered: number; failure: { error: unknown } | undefined }>;
    /** Sends the edits and deletions of `window` this instance has not delivered; how many. */
    sweepAmendments: (window: RecentWindow) => Promise<number>;
    /**
     * Tells this instance's listeners again of the user events of `window` that the store
     * shows: chats created, vendor members added and removed.
     */
    sweepUserEvents: (window: RecentWindow) => Promise<void>;
  },
  options: {
    periodMs: number;
    onError: (error: unknown, context: string) => void;
    onRecovered?: ((messages: number) => void) | undefined;
    onAmendmentsRecovered?: ((amendments: number) => void) | undefined;
  },
) {
  const { periodMs } = options;
  /** Each followed chat's stored last seq at the previous sweep. */
  let storedAtLastSweep = new Map<string, number>();
  const messageFailures = firstFailureReported(options.onError, "sweep");

  /** Messages stored before the previous sweep and still not delivered. */
  async function sweepMessages() {
    const previous = storedAtLastSweep;
    const followed = deps.followed();
    storedAtLastSweep = followed.size === 0 ? new Map() : await deps.lastSeqs([...followed.keys()]);
    const stalled = [...followed].filter(([chatId, lastSeq]) =>
      (previous.get(chatId) ?? 0) > lastSeq
    );
    if (stalled.length === 0) return;
    const { delivered, failure } = await deps.deliverStored(
      previous,
      stalled.map(([chatId]) => chatId),
    );
    if (delivered > 0) options.onRecovered?.(delivered);
    if (failure) throw failure.error;
  }

  const recent = { periodMs, onError: options.onError };
  const sweepAmendments = recentPastSweep(async (window) => {
    const replayed = await deps.sweepAmendments(window);
    if (replayed > 0) options.onAmendmentsRecovered?.(replayed);
  }, { ...recent, context: "sweep amendments" });
  const sweepUserEvents = recentPastSweep(deps.sweepUserEvents, {
    ...recent,
    context: "sweep user events",
  });

  return repeatEvery(periodMs, () =>
    Promise.all([
      sweepMessages().then(messageFailures.ended, messageFailures.failed),
      sweepAmendments(),
      sweepUserEvents(),
    ]));
}

/**
 * Runs `run` every `periodMs`, each period counted from the end of the run before, until
 * stopped. `stop()` resolves once the run under way has ended: its statements must be over
 * before the pools end (postgres.js ends a busy connection without waiting for its socket to
 * close, and the connection's timer outlives the service's close).
 */
export function repeatEvery(periodMs: number, run: () => Promise<unknown>) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  /** The run under way, if any: stop() waits for it. */
  let running: Promise<unknown> = Promise.resolve();
  function schedule() {
    if (stopped) return;
    timer = setTimeout(() => {
      running = run().finally(schedule);
    }, periodMs);
  }
  schedule();
  return {
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/**
 * A look at the store's recent past, each period: `sweep` gets what came before the last period
 * (its live events, if published, came by then), back to a period before where the previous
 * look began. A look that fails leaves its stretch to the next one; never rejects.
 */
export function recentPastSweep(
  sweep: (window: RecentWindow) => Promise<void>,
  options: {
    periodMs: number;
    context: string;
    onError: (error: unknown, context: string) => void;
  },
): () => Promise<void> {
  const { periodMs } = options;
  /** When the previous look began (this clock). */
  let sweptAt = Date.now();
  const failures = firstFailureReported(options.onError, options.context);
  return async () => {
    const startedAt = Date.now();
    try {
      await sweep({ withinMs: startedAt - sweptAt + 2 * periodMs, exceptLastMs: periodMs });
      sweptAt = startedAt;
      failures.ended();
    } catch (error) {
      failures.failed(error);
    }
  };
}

/**
 * Reports the first failure of a run of them: a store that is away fails every sweep, and says
 * so once (its own metrics and readiness tell how long).
 */
function firstFailureReported(
  onError: (error: unknown, context: string) => void,
  context: string,
) {
  let failing = false;
  return {
    failed(error: unknown) {
      if (!failing) onError(error, context);
      failing = true;
    },
    ended() {
      failing = false;
    },
  };
}
