import postgres, { type ReservedSql, type Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import { isConnectionFailure } from "./errors.ts";

/**
 * Transactions on reserved connections instead of `sql.begin`: when a connection is lost in the
 * middle of a transaction, postgres.js 3.4.9's `begin` sends its rollback on the closed socket,
 * which throws outside any promise and ends the process (porsager/postgres#1208). Here nothing
 * more is sent on a connection once it failed; postgres.js reconnects it for the pool.
 */

/** One transaction: `work`, then commit; rolled back when `work` throws. */
export async function transaction<T>(sql: Sql, work: (tx: Sql) => Promise<T>): Promise<T> {
  const chain = createTransactionChain(sql);
  try {
    return await chain.run(work, () => false);
  } finally {
    await chain.release();
  }
}

/**
 * Transactions one after another on one reserved connection, for a writer that commits batch
 * after batch: when more work is waiting at a commit, the next transaction is opened in the same
 * round trip (`commit; begin`, one simple query), so a busy writer pays two round trips a batch
 * (its statement, then the commit) instead of three. Nothing is sent ahead of an answer the
 * writer has not seen: a batch commits only after its statement came back, as with `sql.begin`.
 *
 * The next `run` must follow a chained commit at once, before any I/O: postgres.js does not
 * guard a reserved connection that closes while it waits, and a query sent on it then fails
 * outside any promise. The message writer takes its next batch in the same task.
 */
export interface TransactionChain {
  /**
   * Runs `work` in a transaction and commits it; `more` says whether another one follows.
   * With `timeoutMs`, fails after that long: a connection lost between two of postgres.js's
   * socket events can leave a query unanswered forever. The transaction is then rolled back if
   * it ever answers, and the chain goes on on another connection.
   */
  run<T>(work: (tx: Sql) => Promise<T>, more: () => boolean): Promise<T>;
  /** Gives the connection back to the pool (rolling back a transaction opened for nothing). */
  release(): Promise<void>;
}

/** A reserved connection and whether a transaction is open on it. */
interface Lease {
  reserved: ReservedSql;
  open: boolean;
}

export function createTransactionChain(
  sql: Sql,
  options: { timeoutMs?: number } = {},
): TransactionChain {
  const { timeoutMs } = options;
  let current: Lease | undefined;

  async function giveBack(lease: Lease): Promise<void> {
    if (current === lease) current = undefined;
    if (lease.open) await lease.reserved.unsafe("rollback").catch(() => {});
    lease.open = false;
    lease.reserved.release();
  }

  async function attempt<T>(
    lease: Lease,
    work: (tx: Sql) => Promise<T>,
    more: () => boolean,
    abandoned: () => boolean,
  ): Promise<T> {
    const { reserved } = lease;
    try {
      if (!lease.open) await reserved.unsafe("begin");
      lease.open = true;
      const result = await work(reserved);
      if (abandoned()) throw new Error("the transaction took too long and was given up");
      const chained = more();
      await reserved.unsafe(chained ? "commit; begin" : "commit");
      lease.open = chained;
      // committed while its caller was told it failed: that outcome stays unknown to it, as
      // with any answer lost with its connection; the lease is no longer the chain's
      if (abandoned()) await giveBack(lease);
      return result;
    } catch (error) {
      if (connectionSurvived(error)) await giveBack(lease);
      // else postgres.js has taken the connection back to reconnect it: any further query or
      // a release of this reservation would act on a closed socket
      else if (current === lease) current = undefined;
      throw error;
    }
  }

  return {
    async run(work, more) {
      const lease = current ??= { reserved: await sql.reserve(), open: false };
      if (timeoutMs === undefined) return await attempt(lease, work, more, () => false);
      let timer: ReturnType<typeof setTimeout> | undefined;
      let givenUp = false;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          givenUp = true;
          if (current === lease) current = undefined;
          reject(new ChatError("unavailable", "the database did not answer in time"));
        }, timeoutMs);
      });
      const running = attempt(lease, work, more, () => givenUp);
      running.catch(() => {});
      try {
        return await Promise.race([running, timedOut]);
      } finally {
        clearTimeout(timer);
      }
    },

    async release() {
      if (current) await giveBack(current);
    },
  };
}

/** Whether the connection is still there after `error`: not when it was lost or is ending. */
function connectionSurvived(error: unknown): boolean {
  if (isConnectionFailure(error)) return false;
  return !(error instanceof postgres.PostgresError) ||
    (error.severity !== "FATAL" && error.severity !== "PANIC");
}
