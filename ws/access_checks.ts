/**
 * How one socket's check ended: still allowed, closed by the check, already gone (closed by its
 * client or a shutdown before its turn), or the store did not answer.
 */
export type AccessCheckOutcome = "kept" | "closed" | "gone" | "unanswered";

/** A socket whose access can be checked against the store. */
export interface AccessCheckable {
  checkAccess(): Promise<AccessCheckOutcome>;
  /**
   * Told as a check is requested; true when the socket sends nothing more until its check has
   * run (one whose access may have been taken away), which puts it at the front of the line.
   */
  holdUntilChecked?(): boolean;
}

export interface AccessCheckOptions {
  /** Sockets checked at the same time, so sends keep the database's connections. */
  atOnce?: number;
  /** After the store failed to answer, how long the checks pause. */
  retryMs?: number;
  /** Told when a request adds sockets to check, with how many are waiting then. */
  onRequest?: (waiting: number) => void;
  /** Told of each socket's check. */
  onChecked?: (outcome: AccessCheckOutcome) => void;
  /** Told when the store failed a check: the checks pause for `retryMs`. */
  onUnanswered?: () => void;
}

/**
 * Checks of every open socket's access against the store, for when user events may have been
 * lost on the bus (ChatFeed.requestResync). A request puts every open socket in line (once:
 * one already waiting keeps its place, unless it now holds its events for the check, which puts
 * it at the front), and they are checked a few at a time. A check the
 * store does not answer goes to the back of the line and the checks pause for `retryMs`: a
 * store that is away is not asked once per socket, and one socket whose check keeps failing
 * does not hold up the others.
 */
export function createAccessChecks(
  sockets: () => Iterable<AccessCheckable>,
  options: AccessCheckOptions = {},
) {
  const atOnce = options.atOnce ?? 4;
  const retryMs = options.retryMs ?? 2_000;
  /** In line, oldest first. */
  const waiting = new Set<AccessCheckable>();
  let workers = 0;
  let paused: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const idle: Array<() => void> = [];

  async function work(): Promise<void> {
    workers++;
    try {
      while (!stopped && paused === undefined) {
        const [next] = waiting;
        if (next === undefined) return;
        waiting.delete(next);
        // checkAccess does not reject; if it ever did, the socket is tried again later
        const outcome = await next.checkAccess().catch(() => "unanswered" as const);
        options.onChecked?.(outcome);
        if (outcome === "unanswered") pause(next);
      }
    } finally {
      workers--;
      if (workers === 0) { for (const resolve of idle.splice(0)) resolve(); }
    }
  }

  function pause(socket: AccessCheckable): void {
    waiting.add(socket);
    if (paused !== undefined || stopped) return;
    options.onUnanswered?.();
    paused = setTimeout(() => {
      paused = undefined;
      start();
    }, retryMs);
  }

  function start(): void {
    // each work() takes its first socket at once
    while (!stopped && paused === undefined && workers < atOnce && waiting.size > 0) void work();
  }

  return {
    request(): void {
      if (stopped) return;
      const holding: AccessCheckable[] = [];
      const others: AccessCheckable[] = [];
      for (const socket of sockets()) (socket.holdUntilChecked?.() ? holding : others).push(socket);
      const before = [...waiting];
      waiting.clear();
      for (const socket of [...holding, ...before, ...others]) waiting.add(socket);
      options.onRequest?.(waiting.size);
      start();
    },
    /** No more checks; resolves when the ones running have finished. */
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(paused);
      paused = undefined;
      waiting.clear();
      if (workers > 0) await new Promise<void>((resolve) => idle.push(resolve));
    },
  };
}
