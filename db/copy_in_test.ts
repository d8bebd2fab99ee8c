import assert from "node:assert/strict";
import postgres, { type Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import { freshDatabase } from "../tests/support/database.ts";
import { within } from "../tests/support/wait.ts";
import { copyIn } from "./copy_in.ts";

const COPY = "copy notes (body) from stdin";
const lines = (...texts: string[]) => texts.map((text) => new TextEncoder().encode(`${text}\n`));

/** A pool of one connection over a fresh database with a table `notes`. */
async function withTable(test: (sql: Sql) => Promise<void>): Promise<void> {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await sql`create table notes (body text not null check (body <> 'refused'))`;
    await test(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

const bodies = async (sql: Sql) =>
  (await sql<{ body: string }[]>`select body from notes order by body`).map((row) => row.body);

Deno.test("copyIn() stores the rows and gives its connection back to the pool", async () => {
  await withTable(async (sql) => {
    await copyIn(sql, COPY, lines("a", "b"), { timeoutMs: 5_000 });
    assert.deepEqual(await within(bodies(sql), 2_000, "a query after the copy"), ["a", "b"]);
  });
});

Deno.test("copyIn() whose end PostgreSQL never confirms is unavailable once its time is up, and its connection is ended, not reused", async () => {
  await withTable(async (sql) => {
    // refused after the last row was sent: postgres.js 3.4.9 then never finishes the COPY's
    // stream, as when the connection is lost between the end of the data and its answer
    const started = performance.now();
    await assert.rejects(
      copyIn(sql, COPY, lines("a", "refused"), { timeoutMs: 300 }),
      (error: unknown) => error instanceof ChatError && error.code === "unavailable",
    );
    assert.ok(performance.now() - started < 2_000, "answered at its time");
    // the pool's one connection, ended, is opened again for the next query
    assert.deepEqual(await within(bodies(sql), 5_000, "a query after the copy"), []);
  });
});

Deno.test("copyIn() that waits longer than its time for a connection is unavailable, and the connection goes back once it comes", async () => {
  await withTable(async (sql) => {
    const holder = await sql.reserve();
    await assert.rejects(
      copyIn(sql, COPY, lines("late"), { timeoutMs: 100 }),
      (error: unknown) => error instanceof ChatError && error.code === "unavailable",
    );
    holder.release();
    // the pool's one connection went to the copy's reservation, given up: it must come back
    assert.deepEqual(await within(bodies(sql), 2_000, "a query after the copy"), []);
  });
});
