import postgres, { type Sql } from "postgres";
import { freshDatabase } from "./database.ts";

// What a statement reads, as PostgreSQL's statistics views count it: for tests that a query
// reads a page, not a table, whatever plan PostgreSQL made of it.

/** How the statements `work` runs on one connection read `table`. */
export async function readsOf(sql: Sql, table: string, work: (tx: Sql) => Promise<unknown>) {
  const reserved = await sql.reserve();
  try {
    // the view also counts what this connection did before and has not yet reported
    const reads = async () => {
      const [row] = await reserved<
        [{ seq_scan: number; seq_tup_read: number; idx_tup_fetch: number }]
      >`
        select seq_scan::int, seq_tup_read::int, idx_tup_fetch::int
        from pg_stat_xact_user_tables where relname = ${table}`;
      return row!;
    };
    await reserved`begin`;
    const before = await reads();
    await work(reserved);
    const after = await reads();
    await reserved`rollback`;
    const rowsFetchedByIndex = after.idx_tup_fetch - before.idx_tup_fetch;
    return {
      seqScans: after.seq_scan - before.seq_scan,
      rowsFetchedByIndex,
      rowsRead: after.seq_tup_read - before.seq_tup_read + rowsFetchedByIndex,
    };
  } finally {
    reserved.release();
  }
}

/** PostgreSQL may keep a generic plan of a prepared statement, one made without its values. */
export const PLAN_MODES = ["force_custom_plan", "force_generic_plan"] as const;
type PlanMode = typeof PLAN_MODES[number];

/** Each of `filters` with each plan mode. */
export function withEachPlanMode<Filter>(filters: Filter[]): Array<readonly [Filter, PlanMode]> {
  return filters.flatMap((filter) => PLAN_MODES.map((plan) => [filter, plan] as const));
}

/** As readsOf, with the statements of `work` planned as `plan` says. */
export function readsUnderPlan(
  sql: Sql,
  { table, plan }: { table: string; plan: PlanMode },
  work: (tx: Sql) => Promise<unknown>,
) {
  return readsOf(sql, table, async (tx) => {
    await tx`select set_config('plan_cache_mode', ${plan}, true)`;
    await work(tx);
  });
}

/** A fresh database through one connection: the statements prepared on it are the ones measured. */
export async function onOneConnection(test: (sql: Sql) => Promise<void>): Promise<void> {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await test(sql);
  } finally {
    await sql.end();
  }
}

/**
 * Resolves once no statement of the database whose text contains `fragment` runs, or fails
 * after `ms`: for tests that a call its client left ends its query. Polled: PostgreSQL tells
 * no one when a statement ends.
 */
export async function untilNoStatementRuns(
  observer: Sql,
  fragment: string,
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const [{ running }] = await observer<[{ running: number }]>`
      select count(*)::int as running from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid()
        and state = 'active' and strpos(query, ${fragment}) > 0`;
    if (running === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`a statement with ${fragment} still runs ${ms} ms after its caller left`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
