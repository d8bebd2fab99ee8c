/**
 * A signal can come while an instance is still starting: a deploy rolled back while a migration
 * waits for its lock, or the admin plane still binding while the HTTP plane already takes
 * sockets. It must stop the service as any shutdown does, not end the process as the runtime
 * does with a signal nothing listens for (and in a container deno is PID 1, which ignores one).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { MIGRATION_LOCK_KEY } from "../db/migrate.ts";
import { freshDatabase } from "./support/database.ts";
import { serviceEnvironment, startServiceProcess } from "./support/service_process.ts";
import { within } from "./support/wait.ts";

Deno.test("SIGTERM while the start waits for the migration lock stops the service once it is up: exit 0, 'shutting down' then 'stopped'", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  const holder = await sql.reserve();
  try {
    await holder`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    const env = { ...serviceEnvironment({ databaseUrl: database.url }), SHUTDOWN_TIMEOUT: "5" };
    await using service = await startServiceProcess(env, { waitUntilListening: false });
    // the start is past its first steps once it tries the lock
    await within(
      (async () => {
        for (;;) {
          const [{ trying }] = await sql<[{ trying: number }]>`
            select count(*)::int as trying from pg_stat_activity
            where datname = current_database() and pid <> pg_backend_pid()
              and query like '%pg_try_advisory_lock%'`;
          if (trying > 0) return;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })(),
      30_000,
      "the start to try the migration lock",
    );

    service.kill("SIGTERM");
    await service.waitForLog((line) => line.message === "shutting down", "the shutdown to begin");
    await holder`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    const status = await within(service.status, 10_000, "the exit");
    assert.equal(status.code, 0, service.lines.join("\n"));
    const messages = service.logs().map((line) => line.message);
    assert.equal(messages.at(-1), "stopped");
  } finally {
    holder.release();
    await sql.end();
  }
});
