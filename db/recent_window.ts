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
