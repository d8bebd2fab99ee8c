import type { PendingQuery, Row, Sql } from "postgres";
import type { RecentWindow } from "../chat/ports.ts";

/**
 * The condition that `time` (a column or an expression, as a fragment) falls in `window`, on the
 * database's clock: within its last `withinMs`, less its last `exceptLastMs`. An index on `time`
 * serves it; write `time` as the index does.
 */
export function inRecentWindow(
  sql: Sql,
  time: PendingQuery<Row[]>,
  { withinMs, exceptLastMs = 0 }: RecentWindow,
): PendingQuery<Row[]> {
  return sql`${time} > now() - make_interval(secs => ${withinMs / 1000})
    and ${time} <= now() - make_interval(secs => ${exceptLastMs / 1000})`;
}

/**
 * `window`'s bounds as `inRecentWindow` gives them, cut to whole ms (columns `from_at`, `to_at`).
 * For times kept in whole ms (read_at), `time > from_at and time <= to_at` holds of the same rows
 * as `inRecentWindow`.
 */
export function recentWindowBounds(
  sql: Sql,
  { withinMs, exceptLastMs = 0 }: RecentWindow,
): PendingQuery<Row[]> {
  const msAgo = (ms: number) =>
    sql`date_trunc('milliseconds', now() - make_interval(secs => ${ms / 1000}))`;
  return sql`${msAgo(withinMs)} as from_at, ${msAgo(exceptLastMs)} as to_at`;
}
