/** Why a body was ended: nothing came for the idle time, or too little came all along. */
export type Stall = "idle" | "slow";

/** Why a body failed: it stalled, or reading it failed (its connection ended before it did). */
export type BodyFailure = Stall | "broken";

export interface StallLimits {
  /** How long the body may send nothing. */
  idleMs: number;
  /**
   * The average rate the body must keep: by any moment it must have sent this rate times the
   * time it was waited for, less `idleMs` worth of grace (the time limit grows with what came,
   * as Apache's `mod_reqtimeout` MinRate does).
   */
  minBytesPerSecond: number;
}

/**
 * `body` as it comes, failing with `failed(reason)` when no bytes come for `idleMs`, when it
 * falls behind `minBytesPerSecond`, or when reading it fails ("broken": a client that closed
 * its connection mid-body, which Deno reports as an error with no code; it is the client's
 * doing, not ours). A request body has no deadline of its own: a client that vanished without
 * closing its connection (a phone that changed networks) would hold its upload, and the
 * upload's place among the user's open uploads, for good; one that trickles a byte now and
 * then would hold it as long, and a batch of chunks in memory with it.
 */
export function failWhenStalled(
  body: ReadableStream<Uint8Array>,
  limits: StallLimits,
  failed: (reason: BodyFailure) => Error,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let received = 0;
  // only the time spent waiting for the client counts: not the reader's own (a store write)
  let waitedMs = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const pulledAt = Date.now();
      const allowedMs = limits.idleMs + (received / limits.minBytesPerSecond) * 1000;
      const slowInMs = allowedMs - waitedMs;
      const reason: Stall = slowInMs < limits.idleMs ? "slow" : "idle";
      const silence = Promise.withResolvers<never>();
      timer = setTimeout(
        () => silence.reject(failed(reason)),
        Math.max(0, Math.min(limits.idleMs, slowInMs)),
      );
      try {
        const read = reader.read().catch(() => Promise.reject(failed("broken")));
        const { done, value } = await Promise.race([read, silence.promise]);
        waitedMs += Date.now() - pulledAt;
        if (done) return controller.close();
        received += value.byteLength;
        controller.enqueue(value);
      } catch (error) {
        controller.error(error);
        reader.cancel(error).catch(() => {});
      } finally {
        clearTimeout(timer);
      }
    },
    cancel(reason) {
      clearTimeout(timer);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
