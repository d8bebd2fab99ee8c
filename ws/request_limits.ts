import { type BucketLimits, TokenBucket } from "./token_bucket.ts";

/** The kinds of request counted apart for concurrency: a stalled upload holds more. */
export type RequestKind = "upload" | "download";

/** Per-user limits of HTTP requests on one instance. */
export interface RequestLimits extends BucketLimits {
  /** Requests of each kind one user may have open at once. */
  concurrent: Readonly<Record<RequestKind, number>>;
}

/** Why a request was refused, and when trying again may help. */
export interface Refusal {
  admitted: false;
  limit: "rate" | "concurrency";
  /** Whole seconds, for `Retry-After`. */
  retryAfterSeconds: number;
}

/** A request let in; `release()` (idempotent) when it no longer holds anything. */
export interface Admitted {
  admitted: true;
  release(): void;
}

interface UserState {
  bucket: TokenBucket;
  open: Record<RequestKind, number>;
  /** When the bucket was last asked for a token. */
  lastUsed: number;
}

/**
 * Per-user token bucket and caps on open requests. No timers: state is dropped on use.
 *
 * Bounded by what users do, not by how many tokens exist: a user's state is kept while a
 * request of theirs is open, and after that only until the bucket would be full again
 * (`rateBurst / ratePerSecond` seconds after the last request), when forgetting it changes
 * nothing (a new one starts full). Idle users are swept from the table at most once per that
 * time (at least a second), on the next request. So the table holds the users that made a
 * request in the last two such periods or still have one open: it grows with the request rate
 * the instance serves, and an attacker with many valid tokens pays a verified request per
 * entry, each gone that long after its last request (5 s with the media defaults).
 */
export function createRequestLimits(limits: RequestLimits, options: { now: () => number }) {
  const { now } = options;
  const users = new Map<string, UserState>();
  const idleMs = (limits.rateBurst / limits.ratePerSecond) * 1000;
  const sweepEveryMs = Math.max(idleMs, 1000);
  // a bucket with less than one token has one again within 1 / rate seconds
  const rateRetryAfter = Math.max(1, Math.ceil(1 / limits.ratePerSecond));
  let lastSweep = now();

  function sweep(at: number) {
    if (at - lastSweep < sweepEveryMs) return;
    lastSweep = at;
    for (const [userId, state] of users) {
      if (state.open.upload + state.open.download === 0 && at - state.lastUsed >= idleMs) {
        users.delete(userId);
      }
    }
  }

  function stateOf(userId: string, at: number): UserState {
    sweep(at);
    let state = users.get(userId);
    if (state === undefined) {
      state = {
        bucket: new TokenBucket(limits, now),
        open: { upload: 0, download: 0 },
        lastUsed: at,
      };
      users.set(userId, state);
    }
    return state;
  }

  function hold(state: UserState, kind: RequestKind): Admitted {
    state.open[kind] += 1;
    let released = false;
    return {
      admitted: true,
      release() {
        if (released) return;
        released = true;
        state.open[kind] -= 1;
      },
    };
  }

  const overCap = (state: UserState, kind: RequestKind): Refusal | null =>
    state.open[kind] >= limits.concurrent[kind]
      ? { admitted: false, limit: "concurrency", retryAfterSeconds: 1 }
      : null;

  return {
    /**
     * Lets one request of `userId` in, or says which limit refused it. A request over the
     * concurrency cap takes no token, so waiting on one's own open uploads costs no rate.
     */
    admit(userId: string, kind: RequestKind): Admitted | Refusal {
      const at = now();
      const state = stateOf(userId, at);
      const refusal = overCap(state, kind);
      if (refusal) return refusal;
      state.lastUsed = at;
      if (!state.bucket.take()) {
        return { admitted: false, limit: "rate", retryAfterSeconds: rateRetryAfter };
      }
      return hold(state, kind);
    },

    /**
     * Takes one of `userId`'s places of `kind` without a token, or refuses over the cap: for
     * work that holds as much as a request of that kind but is paced elsewhere (base64 media
     * in a socket frame, which the socket's own rate limit already counted).
     */
    occupy(userId: string, kind: RequestKind): Admitted | Refusal {
      const state = stateOf(userId, now());
      return overCap(state, kind) ?? hold(state, kind);
    },

    /** Users whose state is kept (for tests and metrics). */
    get trackedUsers(): number {
      return users.size;
    },
  };
}

/** One instance's per-user media limits, shared by the media routes and the sockets. */
export type RequestLimiter = ReturnType<typeof createRequestLimits>;
