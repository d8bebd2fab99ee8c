/**
 * What a stalled NATS connection (open, answering nothing: a partition, a hung server) may hold
 * of this instance's publishes, by default. nats.js keeps whatever is published meanwhile in its
 * socket's write buffer, without bound, until its pings give the connection up (up to
 * UNNOTICED_LOSS_MS, a minute of an instance's traffic), and what is published while it dials
 * again in a buffer of its own until the dial.
 */
export const MAX_PENDING_BYTES = 64 * 1024 * 1024;

/** What the bound works with: the client's flush, and what to do once it is reached. */
export interface PublishBoundDeps {
  /** Bytes handed to the client and not confirmed by the server, past which publishes drop. */
  limit: number;
  /** Resolves once the server has everything published before the call (a PING's PONG). */
  flush: () => Promise<void>;
  /** The limit was reached: the connection is to be given up (once until `reset()`). */
  onReached: (unconfirmedBytes: number) => void;
}

/**
 * Counts the bytes of the publishes handed to the NATS client that its server has not confirmed
 * (by answering a flush sent after them), and refuses more past `limit`: what is held for a
 * connection gone silent stays bounded, and the connection is given up at once instead of at
 * its pings' end. A healthy server confirms as fast as it is written to: a flush goes out each
 * quarter of the limit published.
 */
export function createPublishBound(deps: PublishBoundDeps) {
  const { limit, flush, onReached } = deps;
  let unconfirmed = 0;
  let confirming = false;
  let reached = false;
  /** Bumped by reset(): a confirmation begun before it confirms nothing after it. */
  let epoch = 0;

  function confirm(): void {
    confirming = true;
    const sent = unconfirmed;
    const began = epoch;
    flush().then(
      () => {
        if (began !== epoch) return;
        unconfirmed = Math.max(0, unconfirmed - sent);
        reached = false;
      },
      // the connection was lost meanwhile: reset() follows
      () => {},
    ).finally(() => {
      if (began === epoch) confirming = false;
    });
  }

  return {
    /** True when `bytes` more may be handed to the client; false: the payload is dropped. */
    take(bytes: number): boolean {
      if (unconfirmed + bytes > limit) {
        if (!reached) {
          reached = true;
          onReached(unconfirmed);
        }
        return false;
      }
      unconfirmed += bytes;
      if (!confirming && unconfirmed >= limit / 4) confirm();
      return true;
    },
    /** The client dropped what it held: its connection was lost, or it dials or dialled again. */
    reset(): void {
      epoch++;
      unconfirmed = 0;
      confirming = false;
      reached = false;
    },
  };
}
