import { AsyncLocalStorage } from "node:async_hooks";
import { cancelStatement, timedOut } from "./statement_deadline.ts";

/**
 * The store calls under way, each with a signal that aborts once its caller was answered
 * `unavailable` (withErrorTranslation's deadline). The statements a call sends through an `sql`
 * that knows the calls (withWholeResults) are cancelled then, and those it would send later are
 * not sent: a call that gave up must not leave a statement waiting for a lock held from outside
 * (VACUUM FULL, an operator's LOCK) or running on an overloaded database, holding a connection
 * of the pool until every later call waits for one.
 */
export interface StoreCalls {
  /** The signal of the store call the code that asks runs for; undefined outside any. */
  signal(): AbortSignal | undefined;
  /** `work`, run as a store call that `signal` gives up. */
  run<T>(signal: AbortSignal, work: () => T): T;
}

/** Store calls told apart by the asynchronous context they run in. */
export function createStoreCalls(): StoreCalls {
  const calls = new AsyncLocalStorage<AbortSignal>();
  return {
    signal: () => calls.getStore(),
    run: (signal, work) => calls.run(signal, work),
  };
}

/**
 * A statement's `then` (postgres.js sends it on the first), for the call of `signal`: rejected
 * with `unavailable` and never sent once the call gave up (a statement cancelled before it is
 * sent leaves the reserved connection it was queued on answering nothing more), and cancelled
 * if the call gives up while it waits for a connection, a lock, or runs (not while it waits its
 * turn behind another statement on a busy connection: see cancelStatement). The listener goes once
 * the statement is settled: a late cancel request would hit whatever its connection runs next.
 */
export function thenForCall(
  statement: Promise<unknown> & { cancel(): unknown },
  then: Promise<unknown>["then"],
  signal: AbortSignal,
  onFulfilled: (value: unknown) => unknown,
  onRejected?: (reason: unknown) => unknown,
): Promise<unknown> {
  if (signal.aborted) return Promise.reject(timedOut()).then(onFulfilled, onRejected);
  const cancel = () => cancelStatement(statement);
  signal.addEventListener("abort", cancel, { once: true });
  return then.call(statement, (value) => {
    signal.removeEventListener("abort", cancel);
    return onFulfilled(value);
  }, (error) => {
    signal.removeEventListener("abort", cancel);
    if (onRejected) return onRejected(error);
    throw error;
  });
}
