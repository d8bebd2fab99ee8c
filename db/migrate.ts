import type { Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import { transaction } from "./transactions.ts";

const migrationsDir = new URL("./migrations/", import.meta.url);

/** Any constant will do; every instance must use the same one. */
const MIGRATION_LOCK_KEY = 727_001;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Reads `db/migrations/NNNN_name.sql` in version order. */
export async function readMigrations(dir: URL = migrationsDir): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(entry.name);
    if (!entry.isFile || !match) continue;
    migrations.push({
      version: Number(match[1]),
      name: match[2]!,
      sql: await Deno.readTextFile(new URL(entry.name, dir)),
    });
  }
  return migrations.sort((a, b) => a.version - b.version);
}

/** How long the database has to answer before migrating: the first thing a start asks of it. */
const FIRST_ANSWER_MS = 10_000;

/**
 * Applies the migrations not yet recorded in `schema_migrations`, in order, in one
 * transaction under an advisory lock: instances starting together apply each one once.
 * Returns the versions applied by this call. Rejects with a ChatError `unavailable` when the
 * database does not answer a first query within `firstAnswerMs` (a migration itself may take
 * as long as it takes).
 */
export async function migrate(
  sql: Sql,
  migrations?: Migration[],
  options: { firstAnswerMs?: number } = {},
): Promise<number[]> {
  const all = migrations ?? await readMigrations();
  await firstAnswer(sql, options.firstAnswerMs ?? FIRST_ANSWER_MS);
  return await transaction(sql, async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
    await tx`
      create table if not exists schema_migrations (
        version integer primary key,
        name text not null,
        applied_at timestamptz not null default now()
      )`;
    const rows = await tx<{ version: number }[]>`select version from schema_migrations`;
    const applied = new Set(rows.map((row) => row.version));
    const done: number[] = [];
    for (const migration of all) {
      if (applied.has(migration.version)) continue;
      await tx.unsafe(migration.sql);
      await tx`insert into schema_migrations (version, name)
               values (${migration.version}, ${migration.name})`;
      done.push(migration.version);
    }
    return done;
  });
}

/**
 * A host that drops packets leaves postgres.js waiting for ever (`connect_timeout` does not
 * cover a reservation), so a start would neither listen nor exit: it gives up instead.
 */
async function firstAnswer(sql: Sql, ms: number): Promise<void> {
  const query = sql`select 1`.execute();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    if (await Promise.race([query.then(() => true), late])) return;
  } finally {
    clearTimeout(timer);
  }
  query.cancel();
  query.catch(() => {});
  const { host, port } = sql.options;
  throw new ChatError(
    "unavailable",
    `the database at ${host.join(",")}:${port.join(",")} did not answer within ${ms / 1000} s`,
  );
}
