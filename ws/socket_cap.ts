import { logger } from "../observability/log.ts";
import { createLogBudget } from "../observability/log_budget.ts";

/**
 * The warning of an episode at the cap: logged once, until the sockets fall below it again (and
 * of at most EPISODES_LOGGED episodes a minute).
 */
export const SOCKET_CAP_REACHED =
  "the instance holds WS_MAX_SOCKETS sockets; new ones are answered 503 until some close";

/** The line that ends an episode at the cap. */
export const SOCKET_CAP_LEFT = "below WS_MAX_SOCKETS again";

/**
 * Episodes at the cap logged a minute at most, each with its end; the first logged after some
 * were left out counts them (`episodes_left_out`).
 */
const EPISODES_LOGGED = { lines: 10, windowMs: 60_000 };

/**
 * The instance's bound on WebSockets (WS_MAX_SOCKETS). Every socket holds a file descriptor,
 * and a process out of them can accept nothing, not even the admin plane's calls or the
 * database connections it needs (see ws/http_listener.ts): the bound keeps sockets below the
 * open-file limit. A socket counts from its upgrade to its `close` event, which a socket closed
 * by the service whose client never answers the close reaches only when it is cut (close_cuts.ts):
 * until then it still holds its descriptor.
 */
export function createSocketCap(max: number) {
  const log = logger("ws");
  let held = 0;
  let reached = false;
  /** Whether this episode's warning was written: its end is, only then. */
  let logged = false;
  // At the cap, each socket that closes ends an episode and the next refusal begins one: two
  // lines a socket, for as long as the instance stays full (or a client keeps it so).
  const episodes = createLogBudget(EPISODES_LOGGED);
  return {
    /** Whether one more socket may be upgraded now; the first refusal of an episode is logged. */
    admits(): boolean {
      if (held < max) return true;
      if (!reached) {
        reached = true;
        const leftOut = episodes.take();
        logged = leftOut !== undefined;
        if (logged) {
          log.warn(SOCKET_CAP_REACHED, {
            ws_max_sockets: max,
            ...(leftOut ? { episodes_left_out: leftOut } : {}),
          });
        }
      }
      return false;
    },
    /** Counts `socket` until it closes. */
    hold(socket: WebSocket): void {
      held++;
      socket.addEventListener("close", () => {
        held--;
        if (reached && held < max) {
          reached = false;
          if (logged) log.info(SOCKET_CAP_LEFT, { ws_max_sockets: max });
        }
      }, { once: true });
    },
  };
}

export type SocketCap = ReturnType<typeof createSocketCap>;
