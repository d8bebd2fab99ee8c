import { ChatError } from "../chat/errors.ts";
import type { StoreCalls } from "./store_calls.ts";

/**
 * postgres.js's own codes for a connection that could not be made or was lost, and the socket's
 * and the resolver's. Any of them may also come from the connection postgres.js opens to send a
 * cancel request, whose rejection nobody handles (reportLostConnectionRejections): one missing
 * here would end the process.
 */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EADDRNOTAVAIL",
]);

/** read_only_sql_transaction, serialization_failure, deadlock_detected. */
const RETRY_LATER_CODES: ReadonlySet<string> = new Set(["25006", "40001", "40P01"]);

/** SQLSTATE of a statement that gave up waiting for a lock (`lock_timeout`). */
export const LOCK_NOT_AVAILABLE = "55P03";

/** SQLSTATE of a statement ended by a cancel request, or by `statement_timeout`. */
export const QUERY_CANCELED = "57014";

/** character_not_in_repertoire, untranslatable_character: text the database refuses. */
export const UNSTORABLE_TEXT_CODES: ReadonlySet<string> = new Set(["22021", "22P05"]);

/** The code of a postgres.js error: SQLSTATE, or its own code for a connection; "" if none. */
export function errorCode(error: unknown): string {
  return typeof error === "object" && error !== null && "code" in error
    ? String((error as { code: unknown }).code)
    : "";
}

/**
 * The server's codes for a session it ends or will not start: an operator or a shutdown
 * (57P01), a crash of another backend (57P02), a start or recovery under way (57P03), too many
 * connections (53300), and a session idle (57P05, idle_session_timeout) or idle in a
 * transaction (25P03, idle_in_transaction_session_timeout) for longer than the database or
 * role allows: a statement sent as that happens fails with it, and a new connection succeeds.
 */
const SESSION_ENDED_CODES: ReadonlySet<string> = new Set([
  "57P01",
  "57P02",
  "57P03",
  "53300",
  "57P05",
  "25P03",
]);

/** A connection that could not be made, was lost, or that the server is ending. */
export function isConnectionFailure(error: unknown): boolean {
  const code = errorCode(error);
  return CONNECTION_CODES.has(code) || code.startsWith("08") || SESSION_ENDED_CODES.has(code);
}

let reportingLostConnections = false;

/**
 * postgres.js 3.4.9 reads the array types of every new connection in a promise nobody waits for
 * (`fetchArrayTypes`, started from its ReadyForQuery handler). When PostgreSQL ends that
 * connection meanwhile (a restart, a failover, `pg_terminate_backend`), the rejection is
 * unhandled, and Deno ends the process on it. A lost connection is the pool's to reconnect:
 * such rejections go to `report` instead. Every other unhandled rejection still ends the
 * process. Installed once per process.
 */
export function reportLostConnectionRejections(report: (error: unknown) => void): void {
  if (reportingLostConnections) return;
  reportingLostConnections = true;
  globalThis.addEventListener("unhandledrejection", (event) => {
    if (!isConnectionFailure(event.reason)) return;
    event.preventDefault();
    report(event.reason);
  });
}

/** Turns whatever postgres.js threw into a ChatError; the query text never reaches a client. */
export function translateDatabaseError(error: unknown): ChatError {
  if (error instanceof ChatError) return error;
  const code = errorCode(error);
  if (isConnectionFailure(error)) {
    return new ChatError("unavailable", "the database is unavailable, retry", { cause: error });
  }
  // malformed ids and dangling references read as "no such thing"
  if (code === "22P02" || code === "23503") {
    return new ChatError("not_found", "not found", { cause: error });
  }
  // a statement that ran past statement_timeout or lock_timeout, or that an operator cancelled:
  // the same request may well succeed again
  if (code === QUERY_CANCELED || code === LOCK_NOT_AVAILABLE) {
    return new ChatError("unavailable", "the database did not answer in time, retry", {
      cause: error,
    });
  }
  // A write to a server that takes none now (a standby, or a primary demoted by a failover
  // whose connections the pool makes again to the new one), or a transaction PostgreSQL rolled
  // back to break a deadlock or a serialization conflict, which it says to run again: the
  // client's retry can succeed, and `internal` would tell it not to try.
  if (RETRY_LATER_CODES.has(code)) {
    return new ChatError("unavailable", "the database cannot take this now, retry", {
      cause: error,
    });
  }
  // a time the client gave (a cursor) that is valid ISO-8601 but outside PostgreSQL's range
  if (code === "22007" || code === "22008") {
    return new ChatError("invalid_payload", "a date is out of range", { cause: error });
  }
  // text PostgreSQL cannot store: NUL (U+0000) in any database (22021), or a character a
  // database not in UTF-8 has no code for (22P05: an emoji in LATIN1)
  if (UNSTORABLE_TEXT_CODES.has(code)) {
    const message = code === "22P05"
      ? "text has characters the database's encoding cannot store"
      : "text must not contain NUL characters";
    return new ChatError("invalid_payload", message, { cause: error });
  }
  return new ChatError("internal", "internal error", { cause: error });
}

/**
 * The longest a store call may take before its caller is answered `unavailable`. Every store
 * call is an indexed query or a short transaction (milliseconds), so this only fires when the
 * database does not answer at all: a connection whose packets are dropped (a partition, a
 * hung server) is never closed by postgres.js, and its queries would otherwise hang for as
 * long as the kernel keeps retransmitting (many minutes). The same bound as connect_timeout.
 */
export const STORE_TIMEOUT_MS = 5_000;

/**
 * Wraps every method of a store so that only ChatErrors leave it, and no call takes longer
 * than `timeoutMs` (default {@link STORE_TIMEOUT_MS}): past it the caller gets `unavailable`.
 * With `calls`, each call runs as one of them, and the statements it sent through an `sql`
 * that knows them are cancelled then (store_calls.ts); without, the abandoned query ends on its
 * own. Its outcome is then unknown to the caller, as with any reply lost with its connection; a
 * retried send with the same `client_id` settles it.
 */
export function withErrorTranslation<T extends object>(
  store: T,
  options: { timeoutMs?: number; calls?: StoreCalls } = {},
): T {
  const timeoutMs = options.timeoutMs ?? STORE_TIMEOUT_MS;
  const { calls } = options;
  const wrapped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(store)) {
    wrapped[name] = typeof value === "function"
      ? async (...args: unknown[]) => {
        try {
          if (calls === undefined) return await answerWithin(value.apply(store, args), timeoutMs);
          const call = new AbortController();
          return await answerWithin(
            // awaited inside: a statement a method returns unawaited is sent for the call too
            calls.run(call.signal, async () => await value.apply(store, args)),
            timeoutMs,
            () => call.abort(),
          );
        } catch (error) {
          throw translateDatabaseError(error);
        }
      }
      : value;
  }
  return wrapped as T;
}

/**
 * `work`'s outcome, or `unavailable` once `timeoutMs` have passed, when `onTimeout` runs first.
 * The work itself goes on: what it does later is for the caller to have arranged.
 */
export function answerWithin<T>(
  work: Promise<T>,
  timeoutMs: number,
  onTimeout?: () => void,
): Promise<T> {
  let deadlines = deadlinesByTimeout.get(timeoutMs);
  if (!deadlines) deadlinesByTimeout.set(timeoutMs, deadlines = createDeadlines(timeoutMs));
  return deadlines.bound(work, onTimeout);
}

const deadlinesByTimeout = new Map<number, ReturnType<typeof createDeadlines>>();

interface BoundCall {
  dueAt: number;
  /**
   * Dropped once the call is settled: a settled call waits in the queue until the calls before
   * it are settled too, and must not keep its work (a query and its rows) alive meanwhile.
   */
  pending: { reject: (error: unknown) => void; onTimeout: (() => void) | undefined } | undefined;
}

/**
 * Calls bounded by the same `timeoutMs`, under one timer: each is due `timeoutMs` after it
 * began, so they fall due in the order they began, and the timer only ever waits for the oldest
 * call still open. Every message is a store call, and a timer and a promise race of its own
 * were about 6 % of all the service allocated per message (heap sampling at 1,000 messages /s).
 */
function createDeadlines(timeoutMs: number) {
  /** Oldest first; those before `head` are done with. */
  let calls: BoundCall[] = [];
  let head = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;

  function dropSettled(): void {
    while (head < calls.length && calls[head]!.pending === undefined) head++;
    if (head === calls.length) {
      calls.length = 0;
      head = 0;
      // nothing open: no timer may keep the process (or a test) waiting
      clearTimeout(timer);
      timer = undefined;
    } else if (head >= 1024 && head * 2 >= calls.length) {
      calls = calls.slice(head);
      head = 0;
    }
  }

  function expireDue(): void {
    timer = undefined;
    const now = performance.now();
    while (head < calls.length && calls[head]!.dueAt <= now) {
      const call = calls[head++]!;
      const { pending } = call;
      if (pending === undefined) continue;
      call.pending = undefined;
      try {
        pending.reject(new ChatError("unavailable", "the database did not answer in time"));
        pending.onTimeout?.();
      } catch (error) {
        // a failing onTimeout must not leave the calls behind it without a deadline
        reportError(error);
      }
    }
    dropSettled();
    arm();
  }

  function arm(): void {
    if (timer !== undefined || head === calls.length) return;
    timer = setTimeout(expireDue, Math.max(0, calls[head]!.dueAt - performance.now()));
  }

  return {
    bound<T>(work: Promise<T>, onTimeout?: () => void): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const call: BoundCall = {
          dueAt: performance.now() + timeoutMs,
          pending: { reject, onTimeout },
        };
        calls.push(call);
        arm();
        /** False when the time ran out first. */
        const settle = () => {
          if (call.pending === undefined) return false;
          call.pending = undefined;
          if (calls[head] === call) dropSettled();
          return true;
        };
        work.then((value) => {
          if (settle()) resolve(value);
        }, (error) => {
          if (settle()) reject(error);
        });
      });
    },
  };
}
