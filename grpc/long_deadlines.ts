import { BaseServerInterceptingCall } from "@grpc/grpc-js/build/src/server-interceptors.js";
import { status as Status } from "@grpc/grpc-js";

/** The longest delay a timer takes (2^31 - 1 ms, 24.8 days); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** grpc-timeout as grpc-js reads it (server-interceptors.js). */
const TIMEOUT = /(\d{1,8})\s*([HMSmun])/;
const UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000001,
};

/** The part of grpc-js's server call that reads a call's deadline. */
interface DeadlineReader {
  deadline: number;
  deadlineTimer: ReturnType<typeof setTimeout> | null;
  sendStatus(status: { code: Status; details: string; metadata: null }): void;
  handleTimeoutHeader(header: string): void;
}

let installed = false;

/**
 * grpc-js 1.14's server reads a call's `grpc-timeout` as a 32-bit integer of milliseconds (`| 0`)
 * and hands it to a timer: a deadline more than 24.8 days off (`2592000S`, thirty days, as
 * grpc-go or grpc-js clients send one) wraps around to a negative delay, and the call ends at
 * once with DEADLINE_EXCEEDED; one of 49.7 days and more wraps to any shorter time. A consumer
 * that gives a WatchEvents stream a long deadline had it cut at once, or hours later. This
 * reads the header as grpc-js does otherwise, and waits out a long deadline in steps of the
 * longest timer. Installed once, for every grpc-js server of the process.
 */
export function readLongDeadlines(): void {
  if (installed) return;
  installed = true;
  const prototype = BaseServerInterceptingCall.prototype as unknown as DeadlineReader;
  const original = prototype.handleTimeoutHeader;
  prototype.handleTimeoutHeader = function (this: DeadlineReader, header: string) {
    const match = TIMEOUT.exec(String(header));
    const timeoutMs = match ? Number(match[1]) * UNIT_MS[match[2]!]! : 0;
    // a malformed header (INTERNAL, naming it), or a deadline a timer reaches: as grpc-js has it
    if (!match || timeoutMs <= MAX_TIMER_MS) return original.call(this, header);
    this.deadline = Date.now() + timeoutMs;
    const expire = () => {
      const left = this.deadline - Date.now();
      if (left > 0) {
        this.deadlineTimer = setTimeout(expire, Math.min(left, MAX_TIMER_MS));
        return;
      }
      this.sendStatus({
        code: Status.DEADLINE_EXCEEDED,
        details: "Deadline exceeded",
        metadata: null,
      });
    };
    this.deadlineTimer = setTimeout(expire, MAX_TIMER_MS);
  };
}
