import type { Sql } from "postgres";
import { cancelStatement } from "./statement_deadline.ts";

/**
 * The database's readiness (observability/readiness.ts), in one query: true when it answers and
 * takes writes; a reason when it answers but is read-only (a standby after a failover, or
 * `default_transaction_read_only` on), since every send would then fail; false when it does
 * not answer before `signal` aborts (the query is then cancelled).
 */
export async function checkDatabase(sql: Sql, signal: AbortSignal): Promise<boolean | string> {
  const query = sql<Array<{ in_recovery: boolean; read_only: boolean }>>`
    select pg_is_in_recovery() as in_recovery,
           current_setting('transaction_read_only') = 'on' as read_only`.execute();
  const aborted = new Promise<never>((_, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  try {
    const [row] = await Promise.race([query, aborted]);
    if (row?.in_recovery) return "read-only (in recovery: a standby, not the primary)";
    if (row?.read_only) return "read-only (default_transaction_read_only is on)";
    return true;
  } catch {
    cancelStatement(query);
    return false;
  }
}
