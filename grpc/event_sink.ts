import { status as Status } from "@grpc/grpc-js";
import type { CallStatus } from "./status.ts";

/** The part of a server-streaming call the sink writes to (grpc-js ServerWritableStream). */
export interface StreamingCall<T> {
  write(message: T): boolean;
  once(event: "drain", listener: () => void): unknown;
  end(): void;
  emit(event: "error", status: CallStatus): boolean;
}

/** A bounded queue in front of a streaming call. */
export interface EventSink<T> {
  /** Queues a message; never blocks. Overflow ends the stream with RESOURCE_EXHAUSTED. */
  push(message: T): void;
  /** Ends the stream: OK without a status, else with it. Idempotent. */
  end(status?: CallStatus): void;
  /** Forgets the stream without writing to it (the client has gone). Idempotent. */
  abandon(): void;
  readonly ended: boolean;
}

/**
 * Writes to `call` as fast as the client reads: while grpc-js says its buffer is full
 * (`write` returns false) messages wait here, up to `maxBuffered`; one more ends the stream with
 * RESOURCE_EXHAUSTED. So a slow reader costs a bounded amount of memory and never slows the
 * code that pushes (bus delivery to WebSocket clients). `onEnd` runs once, however it ends.
 */
export function createEventSink<T>(
  call: StreamingCall<T>,
  options: { maxBuffered: number; onEnd: () => void },
): EventSink<T> {
  const queue: T[] = [];
  let draining = false;
  let ended = false;

  function pump() {
    while (!ended && !draining && queue.length > 0) {
      if (!call.write(queue.shift()!)) {
        draining = true;
        call.once("drain", () => {
          draining = false;
          pump();
        });
      }
    }
  }

  function finish(): boolean {
    if (ended) return false;
    ended = true;
    queue.length = 0;
    options.onEnd();
    return true;
  }

  return {
    push(message) {
      if (ended) return;
      if (queue.length >= options.maxBuffered) {
        return this.end({
          code: Status.RESOURCE_EXHAUSTED,
          details: `the stream fell more than ${options.maxBuffered} events behind; watch again`,
        });
      }
      queue.push(message);
      pump();
    },
    end(status) {
      if (!finish()) return;
      if (status) call.emit("error", status);
      else call.end();
    },
    abandon() {
      finish();
    },
    get ended() {
      return ended;
    },
  };
}
