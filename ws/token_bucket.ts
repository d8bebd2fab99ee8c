/** A token bucket: `rate` tokens a second, at most `burst` saved up. No timers: refilled on use. */
export function createTokenBucket(options: { rate: number; burst: number; now: () => number }) {
  let tokens = options.burst;
  let last = options.now();
  return {
    /** Takes one token; false when the bucket is empty. */
    take(): boolean {
      const now = options.now();
      tokens = Math.min(options.burst, tokens + ((now - last) / 1000) * options.rate);
      last = now;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
  };
}

export type TokenBucket = ReturnType<typeof createTokenBucket>;
