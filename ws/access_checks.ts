/** How one socket's check ended: still allowed, closed, or the store did not answer. */
export type AccessCheckOutcome = "kept" | "closed" | "unanswered";

/** A socket whose access can be checked against the store. */
export interface AccessCheckable {
  checkAccess(): Promise<AccessCheckOutcome>;
}

export interface AccessCheckOptions {
  /** Sockets checked at the same time, so sends keep the database's connections. */
  atOnce?: number;
  /** After the store failed to answer, how long until every socket is checked again. */
  retryMs?: number;
  /** Told when a pass starts, with the number of sockets it checks. */
  onPass?: (sockets: number) => void;
  /** Told of each socket's check. */
  onChecked?: (outcome: AccessCheckOutcome) => void;
  /** Told when the store failed a pass: the retry is scheduled. */
  onUnanswered?: () => void;
}

/**
 * Checks of every open socket's access against the store, for when user events may have been
 * lost on the bus (ChatFeed.requestResync). One pass runs at a time; a request made during a
 * pass runs one more after it. A pass stops at the first check the store cannot answer, and all
 * sockets are checked again `retryMs` later, until a pass gets through.
 */
export function createAccessChecks(
  sockets: () => Iterable<AccessCheckable>,
  options: AccessCheckOptions = {},
) {
  const atOnce = options.atOnce ?? 4;
  const retryMs = options.retryMs ?? 2_000;
  let running: Promise<void> | undefined;
  let again = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  /** False when the store failed to answer one of the checks. */
  async function pass(): Promise<boolean> {
    const pending = [...sockets()];
    options.onPass?.(pending.length);
    let answered = true;
    await Promise.all(
      Array.from({ length: atOnce }, async () => {
        for (let next = pending.pop(); next && answered; next = pending.pop()) {
          const outcome = await next.checkAccess();
          options.onChecked?.(outcome);
          if (outcome === "unanswered") answered = false;
        }
      }),
    );
    return answered;
  }

  function request(): void {
    if (stopped) return;
    clearTimeout(retry);
    retry = undefined;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        if (!(await pass())) {
          options.onUnanswered?.();
          if (!stopped) retry = setTimeout(request, retryMs);
          return;
        }
      } while (again && !stopped);
    })().finally(() => (running = undefined));
  }

  return {
    request,
    /** No more passes; resolves when the one running has finished. */
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(retry);
      await running;
    },
  };
}
