import assert from "node:assert/strict";
import postgres from "postgres";
import { freshDatabase } from "../tests/support/database.ts";
import { withWholeResults } from "./whole_results.ts";

Deno.test("after a statement that failed having sent rows, the next results hold just their rows", async () => {
  await using database = await freshDatabase();
  // one connection: the failure and the statements after it share it
  const raw = postgres(database.url, { max: 1, onnotice: () => {} });
  const sql = withWholeResults(raw);
  // rows 1 and 2, then division by zero: postgres.js keeps counting from there
  const failAfterTwoRows = () =>
    assert.rejects(sql`select 1 / (3 - g) as v from generate_series(1, 5) as g`);
  try {
    await failAfterTwoRows();
    const [first, ...rest] = await sql`select 1 as x`;
    assert.deepEqual([first, rest], [{ x: 1 }, []]);

    await failAfterTwoRows();
    const unsafe = await sql.unsafe("select g from generate_series(1, 3) as g");
    assert.deepEqual([...unsafe], [{ g: 1 }, { g: 2 }, { g: 3 }]);
    assert.equal(unsafe.count, 3);

    await failAfterTwoRows();
    const reserved = await sql.reserve();
    try {
      const [row] = await reserved`select 'reserved' as x`;
      assert.deepEqual(row, { x: "reserved" });
    } finally {
      reserved.release();
    }

    // fragments and helpers still compose
    const column = sql("x");
    const [composed] = await sql`select ${column} from (select 2 as x) t ${sql`where x = ${2}`}`;
    assert.deepEqual(composed, { x: 2 });
  } finally {
    await raw.end();
  }
});

Deno.test("without the wrapper postgres.js does leave holes (what the wrapper is for)", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await assert.rejects(sql`select 1 / (3 - g) as v from generate_series(1, 5) as g`);
    const rows = await sql`select 1 as x`;
    // if this fails, postgres.js is fixed and withWholeResults can go
    assert.deepEqual([rows.length, 0 in rows, rows.count], [3, false, 1]);
  } finally {
    await sql.end();
  }
});
