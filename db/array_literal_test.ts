import assert from "node:assert/strict";
import postgres from "postgres";
import { TEST_DATABASE_URL } from "../tests/support/database.ts";
import { arrayLiteral } from "./array_literal.ts";

Deno.test("an array literal reads back as the values it was made of, quotes, backslashes, commas, braces and NULL included", async () => {
  const values = [
    "plain",
    'say "hi"',
    "back\\slash",
    "a,b",
    "{braces}",
    "",
    "NULL",
    null,
    "ünï 🙂",
  ];
  const sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql.unsafe<Array<{ value: string | null }>>(
      "select value from unnest($1::text[]) with ordinality as t(value, n) order by n",
      [arrayLiteral(values)],
      { prepare: true },
    );
    assert.deepEqual(rows.map((row) => row.value), values);
  } finally {
    await sql.end();
  }
});
