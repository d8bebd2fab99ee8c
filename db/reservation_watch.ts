import type { UnsafeQueryOptions } from "postgres";

/**
 * What is used of a postgres.js 3.4.9 connection, which `unsafe`'s `onexecute` option (the one
 * its own `sql.begin` uses; not in its types) hands over as a query is sent on it: the
 * reservation it serves (set to null by postgres.js when the connection is lost, or released)
 * and a way to end it. The version is pinned; db/transactions_test.ts and db/copy_in_test.ts
 * fail if a lost connection goes unnoticed.
 */
interface SentOn {
  reserved: unknown;
  terminate(): void;
}

/**
 * Watches the reserved connection that the first query given `options` is sent on (a statement
 * without parameters: postgres.js 3.4.9 calls `onexecute` only for one it need not describe
 * first). `lost`:
 * postgres.js has taken it back since (it closed), so nothing more may be sent on it nor the
 * reservation released: 3.4.9 would write to its closed socket, which throws outside any promise
 * and ends the process (porsager/postgres#1208). `terminate` ends it, unless it is lost already.
 */
export function watchReservation() {
  let connection: SentOn | undefined;
  let reservation: unknown;
  const lost = () => connection !== undefined && connection.reserved !== reservation;
  return {
    options: {
      onexecute(sent: SentOn): boolean {
        connection ??= sent;
        reservation ??= sent.reserved;
        return true; // as ready for more as without this option
      },
    } as UnsafeQueryOptions,
    get lost(): boolean {
      return lost();
    },
    terminate(): void {
      if (connection && !lost()) connection.terminate();
    },
  };
}

/** As postgres.js fails a query whose connection closed: a connection failure (db/errors.ts). */
export function connectionLost(): Error {
  return Object.assign(new Error("the connection closed"), { code: "CONNECTION_CLOSED" });
}
