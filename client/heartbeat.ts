import { startTimer } from "./timers.ts";

/**
 * A socket's liveness check. A connection can die without a close (a mobile network changed,
 * a NAT entry timed out: packets are dropped); with nothing to send, the client would not see
 * it until its next send, showing `open` while nothing comes. The contract's `ping` gets no
 * reply and a browser cannot see WebSocket pings, so once nothing at all has been received for
 * `heartbeatMs`, `check` makes the cheapest request the server answers; any frame received is
 * life. The check's request is the one to leave a socket that does not answer it (see
 * AddOptions in requests.ts); the next check is due `heartbeatMs` after it settled, or after
 * the last frame received if that is later. One check at a time; none while `heartbeatMs`
 * is 0. Owned by the connection: started by each socket ready, stopped when it goes.
 */
export function createHeartbeat(
  deps: {
    /** Asks the server something it answers; settles with the answer, or when given up. */
    check(): Promise<unknown>;
  },
  options: { heartbeatMs: number },
) {
  const every = options.heartbeatMs;
  /** On the monotonic clock: a wall clock set back would put the next check off as long. */
  let lastReceived = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** Bumped by start and stop: a check of an earlier socket schedules nothing. */
  let run = 0;

  function schedule(ms: number): void {
    clearTimeout(timer);
    timer = startTimer(due, ms);
  }

  function due(): void {
    timer = undefined;
    const idle = performance.now() - lastReceived;
    if (idle < every) return schedule(every - idle);
    const mine = run;
    deps.check()
      // answered, refused (an answer too), or given up: what to do was decided where it was made
      .catch(() => {})
      .finally(() => {
        if (run === mine) schedule(every);
      });
  }

  function stop(): void {
    run++;
    clearTimeout(timer);
    timer = undefined;
  }

  return {
    /** A socket is ready: checks are due after `heartbeatMs` with nothing received. */
    start(): void {
      stop();
      if (!(every > 0)) return;
      lastReceived = performance.now();
      schedule(every);
    },
    /** A frame came: the socket lives. */
    received(): void {
      lastReceived = performance.now();
    },
    /** The socket is gone (or the client closed): no more checks. */
    stop,
  };
}

export type Heartbeat = ReturnType<typeof createHeartbeat>;
