import { logger } from "../observability/log.ts";

/** The warning of an episode at the cap: logged once, until the sockets fall below it again. */
export const SOCKET_CAP_REACHED =
  "the instance holds WS_MAX_SOCKETS sockets; new ones are answered 503 until some close";

/**
 * The instance's bound on WebSockets (WS_MAX_SOCKETS). Every socket holds a file descriptor,
 * and a process out of them can accept nothing, not even the admin plane's calls or the
 * database connections it needs (see ws/http_listener.ts): the bound keeps sockets below the
 * open-file limit. A socket counts from its upgrade to its `close` event, which a socket closed
 * by the service whose client never answers the close does not reach: it still holds its
 * descriptor.
 */
export function createSocketCap(max: number) {
  const log = logger("ws");
  let held = 0;
  let reached = false;
  return {
    /** Whether one more socket may be upgraded now; the first refusal of an episode is logged. */
    admits(): boolean {
      if (held < max) return true;
      if (!reached) {
        reached = true;
        log.warn(SOCKET_CAP_REACHED, { ws_max_sockets: max });
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
          log.info("below WS_MAX_SOCKETS again", { ws_max_sockets: max });
        }
      }, { once: true });
    },
  };
}

export type SocketCap = ReturnType<typeof createSocketCap>;
