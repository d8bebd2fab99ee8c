import assert from "node:assert/strict";
import postgres from "postgres";
import { connectWriterPool } from "./pools.ts";
import { TEST_DATABASE_URL } from "../tests/support/database.ts";
import { hasPgBouncer, startPgBouncer } from "../tests/support/pgbouncer.ts";

/** connectWriterPool with a lock timeout of 500 ms, the refusals it reports kept in `refusals`. */
function writerPool(url: string, refusals: string[]) {
  return connectWriterPool(url, {
    max: 1,
    instanceId: crypto.randomUUID(),
    lockTimeoutMs: 500,
    onLockTimeoutRefused: (error) => refusals.push(error.message),
  });
}

Deno.test("connectWriterPool() on a server that takes lock_timeout keeps it, and reports nothing", async () => {
  const refusals: string[] = [];
  const sql = await writerPool(TEST_DATABASE_URL, refusals);
  try {
    const [row] = await sql<[{ lock_timeout: string }]>`show lock_timeout`;
    assert.equal(row.lock_timeout, "500ms");
    assert.deepEqual(refusals, []);
  } finally {
    await sql.end();
  }
});

Deno.test({
  name:
    "connectWriterPool() behind PgBouncer, which refuses lock_timeout, reports it once and gives a pool without it",
  ignore: !hasPgBouncer(),
  async fn() {
    await using bouncer = await startPgBouncer(TEST_DATABASE_URL);
    const refusals: string[] = [];
    const sql = await writerPool(bouncer.url, refusals);
    try {
      const [row] = await sql<[{ lock_timeout: string }]>`show lock_timeout`;
      assert.equal(row.lock_timeout, "0");
      assert.deepEqual(refusals, ["unsupported startup parameter: lock_timeout"]);
    } finally {
      await sql.end();
    }
  },
});

Deno.test("connectWriterPool() throws any other refusal, unreported", async () => {
  const missing = new URL(TEST_DATABASE_URL);
  missing.pathname = `/chat_missing_${crypto.randomUUID().replaceAll("-", "")}`;
  const refusals: string[] = [];
  await assert.rejects(
    writerPool(missing.toString(), refusals),
    (error) => error instanceof postgres.PostgresError && error.code === "3D000",
  );
  assert.deepEqual(refusals, []);
});
