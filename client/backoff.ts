import { LONGEST_DELAY_MS } from "./timers.ts";

/** How long to wait before each reconnection attempt. */
export interface BackoffOptions {
  /** The first delay (default 250 ms). */
  initialMs?: number;
  /** The longest delay (default 30 s). */
  maxMs?: number;
  /** Each attempt waits this many times longer than the one before (default 2). */
  factor?: number;
  /** The share of each delay that is random, 0-1 (default 0.5), so clients spread out. */
  jitter?: number;
  /** A source of numbers in [0, 1) (default Math.random). */
  random?: () => number;
}

/**
 * The delay before reconnection attempt `attempt` (0 for the first): exponential, capped at
 * `maxMs`, with up to `jitter` of it taken off at random, so that the clients of a
 * restarted server do not all come back at the same moment.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const initial = options.initialMs ?? 250;
  // a longer delay than setTimeout can wait would end at once
  const max = Math.min(options.maxMs ?? 30_000, LONGEST_DELAY_MS);
  const factor = options.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5));
  const random = options.random ?? Math.random;
  const base = Math.min(max, initial * factor ** Math.max(0, attempt));
  return Math.round(base * (1 - jitter * random()));
}
