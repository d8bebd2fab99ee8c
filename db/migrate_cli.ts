/** `deno task migrate`: applies pending migrations to DATABASE_URL (or the embedded database). */
import postgres from "postgres";
import { loadDatabaseConfig } from "../config.ts";
import { startEmbeddedPostgres } from "./embedded.ts";
import { migrate } from "./migrate.ts";

const config = loadDatabaseConfig();
const embedded = config.DATABASE_URL ? undefined : await startEmbeddedPostgres(config.DATA_DIR);
const sql = postgres(config.DATABASE_URL ?? embedded!.url, { max: 1, onnotice: () => {} });
try {
  const applied = await migrate(sql);
  console.log(applied.length ? `applied ${applied.join(", ")}` : "up to date");
} finally {
  await sql.end();
  await embedded?.close();
}
