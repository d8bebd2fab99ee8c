import { ChatError } from "../chat/errors.ts";
import { CloseCode, type ErrorFrame, toErrorFrame } from "./errors.ts";
import { type ClientFrame, isFrameProblem, parseClientFrame } from "./frames.ts";
import { overFrameLimit } from "./frame_size.ts";
import { type BucketLimits, TokenBucket } from "./token_bucket.ts";

/** How many client frames a socket may send, and how many refused in a row it is allowed. */
export interface IntakeLimits extends BucketLimits {
  /** Refused frames in a row before the socket is closed with 4429. */
  floodLimit: number;
}

/** What every socket's intake shares: one object for all, nothing held per socket. */
export interface IntakeDeps {
  limits: IntakeLimits;
  maxFrameBytes: number;
  now: () => number;
}

/**
 * What becomes of one client frame: taken in, refused (answered `rate_limited`), or refused
 * once too often in a row (the socket is closed with 4429).
 */
export type Admission = "admitted" | "refused" | "flooding";

/**
 * What a client frame becomes at the door: a frame for the queue (with the size it holds there
 * until `leaveQueue`), an error frame to answer it with, or a reason to close the socket. Only
 * a queued frame keeps the frame's contents; the rest are small.
 */
export type Taken =
  | { to: "queue"; frame: ClientFrame; size: number }
  | { to: "answer"; error: ErrorFrame }
  | { to: "close"; code: number; reason: string };

/**
 * Frames a socket may send before its token is checked: no more than a connection takes before
 * it closes the socket for flooding (a burst, then `floodLimit` refused in a row).
 */
export function earlyFrameLimit(limits: IntakeLimits): number {
  return limits.rateBurst + limits.floodLimit;
}

/**
 * How much may wait behind the frame being handled: a burst of frames (a client that has more
 * waiting sends faster than it is served, as when actions are slow), and no more text than one
 * frame of `maxFrameBytes` (so an empty queue always takes a frame in).
 */
export function queueLimits(
  limits: IntakeLimits,
  maxFrameBytes: number,
): { frames: number; size: number } {
  return { frames: limits.rateBurst, size: maxFrameBytes };
}

/**
 * One socket's door for client frames: a token bucket for the rate, a bound on what waits for
 * its turn, and the count of frames refused in a row. The bound is what keeps a client that is
 * within its rate from piling up frames, and the memory they hold, behind slow actions. It only
 * decides; answering or closing is for the server or the connection that holds it.
 */
export class FrameIntake {
  readonly #deps: IntakeDeps;
  readonly #bucket: TokenBucket;
  /** Frames refused in a row by the rate limit or the queue bound. */
  #strikes = 0;
  /** Client frames waiting for their turn, and their size in UTF-16 code units. */
  #waitingFrames = 0;
  #waitingSize = 0;

  constructor(deps: IntakeDeps) {
    this.#deps = deps;
    this.#bucket = new TokenBucket(deps.limits, deps.now);
  }

  /**
   * Takes a token for one client frame, and room in the queue for one of `size` (0: it is not
   * queued). An admitted frame of some size waits in the queue until `leaveQueue(size)`.
   * Without a token or room the frame is refused; `floodLimit` refused in a row is flooding.
   */
  admit(size: number): Admission {
    if ((size === 0 || this.#hasRoom(size)) && this.#bucket.take()) {
      this.#strikes = 0;
      this.#waitingFrames += size === 0 ? 0 : 1;
      this.#waitingSize += size;
      return "admitted";
    }
    return ++this.#strikes >= this.#deps.limits.floodLimit ? "flooding" : "refused";
  }

  /**
   * Reads and admits one client frame as it arrives (also before its token is checked, so that
   * what waits for the connection is no more than its queue would hold): too large closes 1009,
   * a flood 4429; a binary frame, one that cannot be read or one refused is answered.
   */
  take(data: unknown): Taken {
    if (overFrameLimit(data, this.#deps.maxFrameBytes)) {
      return { to: "close", code: CloseCode.frameTooLarge, reason: "frame too large" };
    }
    if (typeof data !== "string") {
      // counted like any frame: a flood of binary frames is refused and closed like text ones
      const message = "binary frames are not accepted";
      return this.#answered({}, 0) ?? {
        to: "answer",
        error: { type: "error", code: "invalid_frame", message },
      };
    }
    const frame = parseClientFrame(data);
    if (isFrameProblem(frame)) {
      const { code, ...rest } = frame;
      return this.#answered(frame, 0) ?? { to: "answer", error: { type: "error", code, ...rest } };
    }
    // what the parsed frame holds while it waits: its text, give or take the JSON around it
    return this.#answered(frame, data.length) ?? { to: "queue", frame, size: data.length };
  }

  /** Undefined when the frame is admitted; otherwise its `rate_limited` answer, or the close. */
  #answered(
    frame: { request_id?: string | undefined; action?: string | undefined },
    size: number,
  ): Taken | undefined {
    const admission = this.admit(size);
    if (admission === "admitted") return undefined;
    if (admission === "flooding") {
      return { to: "close", code: CloseCode.tooMany, reason: "flooding" };
    }
    // only what identifies the frame is echoed: the refused frame itself is not kept
    const refusal = new ChatError("rate_limited", "too many frames, slow down");
    return { to: "answer", error: toErrorFrame(refusal, frame) };
  }

  /** A frame admitted with `size` (not 0) left the queue: its turn has come. */
  leaveQueue(size: number): void {
    this.#waitingFrames--;
    this.#waitingSize -= size;
  }

  #hasRoom(size: number): boolean {
    const bound = queueLimits(this.#deps.limits, this.#deps.maxFrameBytes);
    return this.#waitingFrames < bound.frames && this.#waitingSize + size <= bound.size;
  }
}
