/** The answer of `/readyz`, and what the gRPC health service reports. */
export interface ReadinessReport {
  ready: boolean;
  /** Each dependency by name: true when it answered in time and can serve. */
  checks: Record<string, boolean>;
  /** Why not ready, in words for an operator; absent when ready. */
  reason?: string;
}

/**
 * Asks one dependency: true when it can serve; false (or a throw) when it did not answer; a
 * string when it answered but cannot serve, saying why in words for an operator.
 */
export type ReadinessCheck = (signal: AbortSignal) => Promise<boolean | string>;

export interface ReadinessOptions {
  /** How long one dependency may take to answer; default 2000 ms. */
  timeoutMs?: number;
  /** How often dependencies are asked while someone subscribes; default 5000 ms. */
  intervalMs?: number;
}

export type ReadinessListener = (report: ReadinessReport) => void;

/**
 * Whether this instance should get traffic. The HTTP plane asks it per `/readyz` request;
 * the gRPC health service subscribes to it. After `close()` (the start of a shutdown) it is
 * not ready for good.
 */
export interface Readiness {
  /** Asks every dependency now; concurrent callers share one round. Never rejects. */
  check(): Promise<ReadinessReport>;
  /** The last report, undefined before the first round. */
  readonly current: ReadinessReport | undefined;
  /**
   * Calls `listener` with the current report (at once when there is one) and then with every
   * change. While anyone listens, dependencies are asked every `intervalMs`. Returns the
   * unsubscribe.
   */
  subscribe(listener: ReadinessListener): () => void;
  /** Marks the instance as shutting down, tells the listeners, and stops asking. */
  close(): void;
}

const SHUTTING_DOWN = "shutting down";

/** Creates the readiness of the dependencies named in `checks`. */
export function createReadiness(
  checks: Record<string, ReadinessCheck>,
  options: ReadinessOptions = {},
): Readiness {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const intervalMs = options.intervalMs ?? 5_000;
  const listeners = new Set<ReadinessListener>();
  let current: ReadinessReport | undefined;
  let round: Promise<ReadinessReport> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  async function ask(check: ReadinessCheck): Promise<boolean | string> {
    const signal = AbortSignal.timeout(timeoutMs);
    const { promise: timedOut, resolve } = Promise.withResolvers<false>();
    const onAbort = () => resolve(false);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      // raced, so a check that ignores its signal still cannot hold the answer up
      const answered = check(signal).then(
        (answer) => typeof answer === "string" ? answer : answer === true,
        () => false,
      );
      return await Promise.race([answered, timedOut]);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  async function runRound(): Promise<ReadinessReport> {
    const names = Object.keys(checks);
    const answers = await Promise.all(names.map((name) => ask(checks[name]!)));
    const results = Object.fromEntries(names.map((name, index) => [name, answers[index] === true]));
    if (closed) return closedReport(results);
    const notAnswering = names.filter((_, index) => answers[index] === false);
    const reasons = [
      ...(notAnswering.length > 0 ? [`not answering: ${notAnswering.join(", ")}`] : []),
      ...names.flatMap((name, index) => {
        const answer = answers[index];
        return typeof answer === "string" ? [`${name}: ${answer}`] : [];
      }),
    ];
    return reasons.length === 0
      ? { ready: true, checks: results }
      : { ready: false, checks: results, reason: reasons.join("; ") };
  }

  function closedReport(results: Record<string, boolean>): ReadinessReport {
    return { ready: false, checks: results, reason: SHUTTING_DOWN };
  }

  function publish(report: ReadinessReport) {
    const changed = current === undefined || current.ready !== report.ready ||
      current.reason !== report.reason;
    current = report;
    if (!changed) return;
    for (const listener of [...listeners]) {
      try {
        listener(report);
      } catch (error) {
        reportError(error);
      }
    }
  }

  function check(): Promise<ReadinessReport> {
    if (closed) return Promise.resolve(closedReport(current?.checks ?? {}));
    round ??= runRound().then((report) => {
      round = undefined;
      publish(report);
      return report;
    });
    return round;
  }

  function schedule() {
    if (closed || listeners.size === 0 || timer !== undefined) return;
    const thisTimer = setTimeout(async () => {
      await check();
      // left (and maybe subscribed again, with a timer of its own) while this round ran
      if (timer !== thisTimer) return;
      timer = undefined;
      schedule();
    }, intervalMs);
    timer = thisTimer;
  }

  return {
    check,
    get current() {
      return current;
    },
    subscribe(listener) {
      listeners.add(listener);
      if (current) listener(current);
      else check();
      schedule();
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0 && timer !== undefined) {
          clearTimeout(timer);
          timer = undefined;
        }
      };
    },
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      publish(closedReport(current?.checks ?? {}));
      listeners.clear();
    },
  };
}
