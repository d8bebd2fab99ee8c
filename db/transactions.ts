import postgres, { type Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import { isConnectionFailure } from "./errors.ts";
import { connectionLost, watchReservation } from "./reservation_watch.ts";

/**
 * Transactions on a reserved connection instead of `sql.begin`: when a connection is lost in the
 * middle of a transaction, postgres.js 3.4.9's `begin` sends its rollback on the closed socket,
 * which throws outside any promise and ends the process (porsager/postgres#1208). Here nothing
 * more is sent on a connection once it failed; postgres.js reconnects it for the pool.
 *
 * Once `signal` aborts, the caller is answered `unavailable` at once, waiting for a connection
 * included: a connection lost between two of postgres.js's socket events can leave a query, or a
 * reservation, unanswered forever. The transaction is then rolled back if it ever answers (or, if
 * its commit was already on its way, its outcome stays unknown to the caller, as with any answer
 * lost with its connection).
 */
export async function transaction<T>(
  sql: Sql,
  work: (tx: Sql) => Promise<T>,
  options: { signal?: AbortSignal } = {},
): Promise<T> {
  const { signal } = options;
  const givenUp = () => signal?.aborted === true;
  let open = false;
  const attempt = (async () => {
    // inside the time limit too: postgres.js can leave a reservation waiting forever when the
    // connection it was to get is lost, and a writer lane would wait with it
    const reserved = await sql.reserve();
    if (givenUp()) {
      reserved.release();
      throw new Error("the transaction waited too long for a connection and was given up");
    }
    const watch = watchReservation();
    try {
      await reserved.unsafe("begin", [], watch.options);
      open = true;
      const result = await work(unlessLost(reserved, watch));
      if (givenUp()) throw new Error("the transaction took too long and was given up");
      // lost while the work awaited something else: its statements were all answered, so
      // nothing failed with it, and a commit would be written to the closed socket
      if (watch.lost) throw connectionLost();
      await reserved.unsafe("commit");
      open = false;
      reserved.release();
      return result;
    } catch (error) {
      // Given back only if it is still there after the rollback too: else postgres.js has taken
      // the connection back to reconnect it, and any further query or a release of this
      // reservation would act on a closed socket (a release, by the pool's next query on it)
      if (!watch.lost && connectionSurvived(error) && (!open || await rolledBack(reserved))) {
        reserved.release();
      }
      throw error;
    }
  })();
  if (signal === undefined) return await attempt;
  return await new Promise<T>((resolve, reject) => {
    const giveUp = () =>
      reject(new ChatError("unavailable", "the database did not answer in time"));
    if (signal.aborted) giveUp();
    else signal.addEventListener("abort", giveUp, { once: true });
    attempt.then(resolve, reject).finally(() => signal.removeEventListener("abort", giveUp));
  });
}

/**
 * `reserved` for the work: a statement made once its connection was lost (while the work
 * awaited something else: the sweep of unsent media deletes files' bytes between two statements)
 * fails as a lost connection does, and is never sent: postgres.js 3.4.9 would write it to the
 * closed socket, which throws outside any promise and ends the process. Checked as the statement
 * is made, which an `await` of it follows with no I/O in between.
 */
function unlessLost(reserved: Sql, watch: { readonly lost: boolean }): Sql {
  const lost = () => {
    const failed = Promise.reject(connectionLost());
    failed.catch(() => {}); // a fragment is never awaited; the statement it goes in fails too
    // as a statement can be (cancelledOnAbort): there is nothing to cancel
    return Object.assign(failed, { cancel() {} });
  };
  return new Proxy(reserved, {
    apply: (target, self, args) => watch.lost ? lost() : Reflect.apply(target, self, args),
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== "unsafe") return value;
      return (...args: Parameters<Sql["unsafe"]>) => watch.lost ? lost() : target.unsafe(...args);
    },
  });
}

/** Rolls back; false when the connection was lost meanwhile. */
function rolledBack(reserved: Sql): Promise<boolean> {
  return reserved.unsafe("rollback").then(() => true, connectionSurvived);
}

/** Whether the connection is still there after `error`: not when it was lost or is ending. */
export function connectionSurvived(error: unknown): boolean {
  if (isConnectionFailure(error)) return false;
  return !(error instanceof postgres.PostgresError) ||
    (error.severity !== "FATAL" && error.severity !== "PANIC");
}
