import type { Logger } from "@logtape/logtape";
import { errorFields } from "./observability/log.ts";

/** How long a port stays closed after its accept loop failed: hyper's sleep_on_errors. */
export const RELISTEN_AFTER_MS = 1_000;

/** Logged (warning) once per episode in which the `name` listener's accept loop failed. */
export const listenerFailedMessage = (name: string) =>
  `the ${name} listener failed; new connections are refused until it listens again`;

/** Logged once a connection is accepted again after such an episode. */
export const listenerBackMessage = (name: string) =>
  `the ${name} listener accepts connections again`;

export interface Relisten {
  /**
   * The listener's accept loop failed (its port is closed by now) or it could not be opened
   * again: opens it again after RELISTEN_AFTER_MS. Warns once per episode.
   */
  failed(error: unknown): void;
  /** The listener open now accepted a connection: ends the episode, if there is one. */
  accepted(): void;
  /** No more opening again (the owner closes its listener). */
  stop(): void;
}

/**
 * The way back for a listener whose accept loop ends at the first failed accept, such as EMFILE
 * when the process is out of file descriptors (Deno.serve and Deno.listenTls both do). Retrying
 * the accept at once would spin on the error, since the connection stays queued; so the owner
 * keeps the connections already open and closes the port (new connections are refused), and
 * `listen`, which opens the port again and throws when it cannot (the listening socket needs a
 * descriptor too), is called after a pause, and again after each further failure. One warning
 * per episode, one line once a connection is accepted again.
 */
export function createRelisten(
  listen: () => void,
  options: { name: string; log: Logger },
): Relisten {
  const { name, log } = options;
  let failing = false;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  function failed(error: unknown) {
    if (stopped) return;
    if (!failing) {
      failing = true;
      log.warn(listenerFailedMessage(name), {
        ...errorFields(error),
        relisten_after_ms: RELISTEN_AFTER_MS,
      });
    }
    clearTimeout(timer);
    timer = setTimeout(relisten, RELISTEN_AFTER_MS);
  }

  function relisten() {
    timer = undefined;
    if (stopped) return;
    try {
      listen();
    } catch (error) {
      failed(error);
    }
  }

  return {
    failed,
    accepted() {
      if (!failing || stopped) return;
      failing = false;
      log.info(listenerBackMessage(name));
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
