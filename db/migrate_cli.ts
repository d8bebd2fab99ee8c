/** `deno task migrate`: applies pending migrations to DATABASE_URL (or the embedded database). */
import postgres from "postgres";
import {
  configOrExit,
  loadDatabaseConfig,
  noArgumentsOrExit,
  requireWritableDataDir,
} from "../config.ts";
import { couldNot, couldNotAfter } from "../dev/could_not_start.ts";
import { EmbeddedDatabaseInUse, startEmbeddedPostgres } from "./embedded.ts";
import { migrate } from "./migrate.ts";

noArgumentsOrExit(
  "usage: deno task migrate\n" +
    "applies the pending migrations of db/migrations to DATABASE_URL (unset: the embedded\n" +
    "database in DATA_DIR), under the advisory lock the instances take at start",
);
const config = configOrExit(() => requireWritableDataDir(loadDatabaseConfig()));
let embedded;
try {
  embedded = config.DATABASE_URL ? undefined : await startEmbeddedPostgres(config.DATA_DIR);
} catch (error) {
  if (!(error instanceof EmbeddedDatabaseInUse)) couldNot("migrate", error);
  console.error(error.message);
  Deno.exit(2);
}
const sql = postgres(config.DATABASE_URL ?? embedded!.url, { max: 1, onnotice: () => {} });
try {
  const applied = await migrate(sql, undefined, {
    onMigrationLockHeld: ({ waitedMs, heldBy }) =>
      console.error(
        `waiting ${Math.round(waitedMs / 1000)} s for the migration lock, held by ` +
          `${heldBy ?? "a session without a name"}`,
      ),
    onLockWait: (migration, retryInMs) =>
      console.error(
        `migration ${migration.version} waits for a long transaction to end; ` +
          `trying again in ${retryInMs / 1000} s`,
      ),
  });
  console.log(applied.length ? `applied ${applied.join(", ")}` : "up to date");
} catch (error) {
  // a database out of reach in one line, as `deno task start` says it, and exit 1
  await couldNotAfter("migrate", error, async () => {
    await sql.end();
    await embedded?.close();
  });
}
await sql.end();
await embedded?.close();
