import { logger } from "./observability/log.ts";

/** One step of a shutdown: it waits for its work until `deadline` aborts, then forces. */
export type ShutdownStep = (deadline: AbortSignal) => Promise<void> | void;

/**
 * The steps that stop a service, run one at a time in the reverse of the order they were added,
 * so that nothing in flight loses what it stands on. The deadline comes a little before the
 * timeout: what is cut then still needs a moment to close (close frames, the database pool),
 * and all of it must be over within the timeout.
 */
export class ShutdownSequence {
  readonly #timeoutMs: number;
  readonly #onError: (error: unknown) => void;
  #steps: ShutdownStep[] = [];
  #endsAt = 0;
  #running: Promise<void> | undefined;
  /** The timers of the deadlines handed out, cleared once the steps are over. */
  #timers = new Set<ReturnType<typeof setTimeout>>();

  /** `onError` hears a step that failed; the steps after it run all the same. */
  constructor(timeoutMs: number, onError: (error: unknown) => void) {
    this.#timeoutMs = timeoutMs;
    this.#onError = onError;
  }

  /** Adds a step, to run before every step added earlier. */
  add(step: ShutdownStep): void {
    this.#steps.push(step);
  }

  /**
   * What is left, once `run` began, of the time the steps may take, in seconds (at least 0.1):
   * the timeout less a moment for the process to exit after them.
   */
  secondsLeft(): number {
    return Math.max(0.1, (this.#endsAt - Date.now()) / 1000);
  }

  /**
   * Aborts at `deadline`, or once `share` of the time left has passed if that comes later: a
   * step that must not be skipped (the NATS drain) still gets its chance when the steps before
   * it used up the deadline.
   */
  notBefore(deadline: AbortSignal, share: number): AbortSignal {
    const floor = this.#abortAfter(this.secondsLeft() * 1000 * share);
    if (deadline.aborted) return floor;
    const later = new AbortController();
    const abortWhenBoth = () => {
      if (deadline.aborted && floor.aborted) later.abort();
    };
    deadline.addEventListener("abort", abortWhenBoth, { once: true });
    floor.addEventListener("abort", abortWhenBoth, { once: true });
    return later.signal;
  }

  /** Runs the steps added so far, each once; a second call waits for the first to end. */
  run(): Promise<void> {
    return this.#running ??= this.#runSteps();
  }

  async #runSteps(): Promise<void> {
    this.#endsAt = Date.now() + this.#timeoutMs - exitReserveMs(this.#timeoutMs);
    const deadline = this.#abortAfter(this.#timeoutMs - Math.min(1_000, this.#timeoutMs / 2));
    try {
      for (const step of this.#steps.splice(0).reverse()) {
        // a step that throws at once is reported like one that rejects
        await Promise.resolve().then(() => step(deadline)).catch(this.#onError);
      }
    } finally {
      for (const timer of this.#timers) clearTimeout(timer);
      this.#timers.clear();
    }
  }

  /**
   * A signal that aborts after `ms`, like AbortSignal.timeout, but whose timer ends with the
   * steps: a listener a step leaves on it (a socket's, a pool's) would keep AbortSignal.timeout's
   * timer, and the process, alive for the rest of the timeout after everything had closed.
   */
  #abortAfter(ms: number): AbortSignal {
    const controller = new AbortController();
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      controller.abort(new DOMException("the shutdown deadline passed", "TimeoutError"));
    }, ms);
    this.#timers.add(timer);
    return controller.signal;
  }
}

/**
 * What the process needs, after its last step, to be gone within the timeout: the exit itself,
 * and the step's own timer, which fires late on a busy host.
 */
function exitReserveMs(timeoutMs: number): number {
  return Math.min(100, timeoutMs / 10);
}

/**
 * Resolves with `work` (true), or when `deadline` aborts first (false: the work is then
 * abandoned, and a warning names it).
 */
export async function untilDeadline(
  work: Promise<void>,
  deadline: AbortSignal,
  what: string,
): Promise<boolean> {
  const { promise: aborted, resolve } = Promise.withResolvers<"aborted">();
  const onAbort = () => resolve("aborted");
  if (deadline.aborted) onAbort();
  deadline.addEventListener("abort", onAbort, { once: true });
  try {
    const outcome = await Promise.race([work.then(() => "done" as const), aborted]);
    if (outcome === "aborted") logger().warn(`${what} did not finish before the deadline`);
    return outcome === "done";
  } finally {
    deadline.removeEventListener("abort", onAbort);
  }
}
