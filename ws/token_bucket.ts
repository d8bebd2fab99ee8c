/** How fast a bucket refills and how much it saves up; one object shared by many buckets. */
export interface BucketLimits {
  /** Tokens a second. */
  ratePerSecond: number;
  /** The most tokens saved up. */
  rateBurst: number;
}

/**
 * A token bucket: no timers, refilled on use. A class with its limits and clock shared, not a
 * closure: every open socket has one, and a closure, its context and an options object each
 * were that much more per socket.
 */
export class TokenBucket {
  readonly #limits: BucketLimits;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(limits: BucketLimits, now: () => number) {
    this.#limits = limits;
    this.#now = now;
    this.#tokens = limits.rateBurst;
    this.#last = now();
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    const now = this.#now();
    const { ratePerSecond, rateBurst } = this.#limits;
    // a wall clock set back (an NTP step, a VM resumed) refills nothing, and takes nothing:
    // the time elapsed would be negative, and drain the bucket for as long as the step
    const elapsedMs = Math.max(0, now - this.#last);
    this.#tokens = Math.min(rateBurst, this.#tokens + (elapsedMs / 1000) * ratePerSecond);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
