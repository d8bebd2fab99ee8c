/**
 * A PostgreSQL array literal of text values (`NULL` for null), so that an array goes as one
 * text parameter. postgres.js serializes an array parameter only once its pool has fetched the
 * database's array types, as its first connection opens; a query sent before that fetch has
 * finished carries `String(array)` instead, which PostgreSQL refuses (22P02, "malformed array
 * literal"). Under load, the writer's first batch after a start was such a query, and went the
 * slow way, one message at a time on the other pool. A literal passes through postgres.js
 * either way.
 */
export function arrayLiteral(values: readonly (string | null)[]): string {
  let literal = "{";
  for (let index = 0; index < values.length; index++) {
    const value = values[index];
    if (index > 0) literal += ",";
    literal += value === null || value === undefined
      ? "NULL"
      : `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  }
  return `${literal}}`;
}
