import type { MediaMetrics } from "../observability/metrics.ts";
import type { Admitted, Refusal, RequestKind, RequestLimiter } from "./request_limits.ts";

/** How a file came in or went out: a `/v1/media` request, or base64 in a `send_message` frame. */
export type MediaVia = "http" | "socket";

/**
 * The per-user media limiter with what it decides counted, labelled with the `via` it is asked
 * for: a place let in is open in `chat_media_open_requests` until its release (idempotent), a
 * refusal adds to `chat_media_rate_limited_total`. Without instruments: the limiter as it is.
 */
export function countedLimits(
  limiter: RequestLimiter,
  options: { via: MediaVia; instruments: MediaMetrics | undefined },
): Pick<RequestLimiter, "admit" | "occupy"> {
  const { via, instruments } = options;
  if (instruments === undefined) return limiter;
  // every series at 0 from the start: one that first appears at 5 never rose, to Prometheus
  for (const route of ["upload", "download"] as const) {
    instruments.mediaOpenRequests.inc({ route, via }, 0);
    for (const limit of ["rate", "concurrency"] as const) {
      instruments.mediaRateLimited.inc({ route, limit, via }, 0);
    }
  }

  const counted = (route: RequestKind, outcome: Admitted | Refusal): Admitted | Refusal => {
    if (!outcome.admitted) {
      instruments.mediaRateLimited.inc({ route, limit: outcome.limit, via });
      return outcome;
    }
    instruments.mediaOpenRequests.inc({ route, via });
    let open = true;
    return {
      admitted: true,
      release() {
        if (!open) return;
        open = false;
        outcome.release();
        instruments.mediaOpenRequests.dec({ route, via });
      },
    };
  };

  return {
    admit: (userId, kind) => counted(kind, limiter.admit(userId, kind)),
    occupy: (userId, kind) => counted(kind, limiter.occupy(userId, kind)),
  };
}
