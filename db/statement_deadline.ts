import { ChatError } from "../chat/errors.ts";
import { errorCode, QUERY_CANCELED } from "./errors.ts";

// The message writer's deadlines: a batch's statement is cancelled before its oldest sender's
// STORE_TIMEOUT_MS runs out, and answered by how it ended, so that no sender is told
// `unavailable` and then stored.

/**
 * How long the database has to end a statement the writer cancelled before the writer gives up
 * on it, and answers its senders `unavailable` with its outcome unknown.
 */
const CANCEL_WAIT_MS = 500;

/**
 * How long before a sender's STORE_TIMEOUT_MS runs out the writer cancels the statement that
 * holds its message (or stops waiting to start it). The writer answers once the database said
 * how the statement ended: a sender told `unavailable` is never stored later, and one whose
 * statement committed just before the cancel is answered with its message. Twice the wait, so
 * that the writer has answered before STORE_TIMEOUT_MS does.
 */
export const CANCEL_AHEAD_MS = 2 * CANCEL_WAIT_MS;

/**
 * The writer's work, answered once it ended: at `cancelAt` (a performance.now() time) it is
 * cancelled if it can be, and `unavailable` CANCEL_WAIT_MS later if it has not ended by then (a
 * connection that never answers must not stall a lane). A statement the cancel ended is
 * `unavailable` too; one that ended otherwise is answered as it ended.
 */
export function bounded<T>(work: Promise<T>, cancelAt: number, cancel?: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let cancelled = false;
    let timer = setTimeout(() => {
      cancelled = true;
      cancel?.();
      timer = setTimeout(() => reject(timedOut()), CANCEL_WAIT_MS);
    }, Math.max(0, cancelAt - performance.now()));
    work.then((value) => {
      clearTimeout(timer);
      resolve(value);
    }, (error) => {
      clearTimeout(timer);
      reject(cancelled && errorCode(error) === QUERY_CANCELED ? timedOut(error) : error);
    });
  });
}

/**
 * `query`, cancelled once `signal` aborts, and not sent if it has: a statement whose caller was
 * answered or has gone must not go on waiting for a lock or running to its statement timeout,
 * holding its connection (the writer has one per lane; a search holds one of the pool the chat
 * shares), nor be stored later. Not sent rather than cancelled before it is: postgres.js skips
 * such a query, and the reserved connection it was queued on then answers nothing more (its
 * rollback included). The listener goes once the query is settled: a late cancel request would
 * hit whatever its connection runs next.
 */
export function cancelledOnAbort<T>(
  query: Promise<T> & { cancel(): unknown },
  signal: AbortSignal,
): Promise<T> {
  if (signal.aborted) return Promise.reject(timedOut());
  const cancel = () => cancelStatement(query);
  signal.addEventListener("abort", cancel, { once: true });
  return query.finally(() => signal.removeEventListener("abort", cancel));
}

/**
 * Cancels `query`, unless it was sent on a connection busy with another statement (pipelined,
 * as the main pool does) and waits its turn: postgres.js 3.4.9 gives such a statement no answer
 * once cancelled, and the statement after it on that connection the rows that were its (one
 * chat's history page read as another's). It runs in its turn instead; its caller, answered
 * already, drops what it gives. One not yet sent is dropped, one running is cancelled. Every
 * cancel of a statement goes through here, the writer's batches too.
 */
export function cancelStatement(query: { cancel(): unknown }): void {
  // postgres.js's own fields: the backend it was sent to, and whether it is the one running
  const { state, active } = query as unknown as { state: unknown; active: boolean };
  if (state && !active) return;
  query.cancel();
}

/** What a sender whose statement did not end in time is answered. */
export function timedOut(cause?: unknown): ChatError {
  return new ChatError("unavailable", "the database did not answer in time", { cause });
}
