import assert from "node:assert/strict";
import postgres from "postgres";
import { freshDatabase } from "../tests/support/database.ts";
import { within } from "../tests/support/wait.ts";
import { checkDatabase } from "./database_check.ts";

function pool(url: string, connection: Record<string, string> = {}) {
  return postgres(url, { max: 1, onnotice: () => {}, connection });
}

Deno.test("checkDatabase() is true for a database that takes writes", async () => {
  await using database = await freshDatabase();
  const sql = pool(database.url);
  try {
    assert.equal(await checkDatabase(sql, AbortSignal.timeout(2_000)), true);
  } finally {
    await sql.end();
  }
});

Deno.test("checkDatabase() names default_transaction_read_only when sessions start read-only", async () => {
  await using database = await freshDatabase();
  const sql = pool(database.url, { default_transaction_read_only: "on" });
  try {
    assert.equal(
      await checkDatabase(sql, AbortSignal.timeout(2_000)),
      "read-only (default_transaction_read_only is on)",
    );
  } finally {
    await sql.end();
  }
});

Deno.test("checkDatabase() is false once its signal aborts while the connection is busy", async () => {
  await using database = await freshDatabase();
  const sql = pool(database.url);
  try {
    const busy = sql`select pg_sleep(1)`.execute();
    const answer = await within(
      checkDatabase(sql, AbortSignal.timeout(50)),
      900,
      "the check to give up before the busy connection is free",
    );
    assert.equal(answer, false);
    await busy;
  } finally {
    await sql.end();
  }
});
