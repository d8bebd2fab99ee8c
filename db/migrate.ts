import type { ReservedSql, Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import { connectionSurvived } from "./transactions.ts";

const migrationsDir = new URL("./migrations/", import.meta.url);

/** Any constant will do; every instance must use the same one. */
const MIGRATION_LOCK_KEY = 727_001;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The first line of a migration that runs outside a transaction, one statement at a time:
 * `create index concurrently` cannot run in one, and builds an index on a large table without
 * holding off its writes. Such a migration must be safe to run again from the start (a build
 * that failed half-way leaves an invalid index to drop first), and its statements are split at
 * every `;` that ends a line.
 */
const WITHOUT_TRANSACTION = "-- migrate: without transaction";

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
 * Applies the migrations not yet recorded in `schema_migrations`, in order, each in a
 * transaction of its own (or none, see WITHOUT_TRANSACTION), under an advisory lock: instances
 * starting together apply each one once. Returns the versions applied by this call. Rejects
 * with a ChatError `unavailable` when the database does not answer a first query within
 * `firstAnswerMs` (a migration itself may take as long as it takes).
 */
export async function migrate(
  sql: Sql,
  migrations?: Migration[],
  options: { firstAnswerMs?: number } = {},
): Promise<number[]> {
  const all = migrations ?? await readMigrations();
  await firstAnswer(sql, options.firstAnswerMs ?? FIRST_ANSWER_MS);
  // one connection for the lock and every migration: a pool of one cannot lend a second
  const connection = await sql.reserve();
  let reusable = true;
  try {
    await lockMigrations(connection);
    try {
      return await applyPending(connection, all);
    } finally {
      // what failed before is the error to report; a connection that may still hold the lock
      // must not go back to the pool, where it would stop every later migration
      await connection`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`
        .catch(() => (reusable = false));
    }
  } catch (error) {
    // a connection lost meanwhile is postgres.js's to reconnect: releasing it would act on it
    if (!connectionSurvived(error)) reusable = false;
    throw error;
  } finally {
    if (reusable) connection.release();
  }
}

/** Between tries of the lock while another instance migrates. */
const LOCK_RETRY_MS = 200;

/**
 * Takes the migration lock, trying again until it is free rather than waiting in
 * `pg_advisory_lock`: a session waiting there holds a snapshot, and `create index concurrently`
 * in the session holding the lock waits for every snapshot to end, so the two would deadlock.
 */
async function lockMigrations(connection: ReservedSql): Promise<void> {
  for (;;) {
    const [{ locked }] = await connection<[{ locked: boolean }]>`
      select pg_try_advisory_lock(${MIGRATION_LOCK_KEY}) as locked`;
    if (locked) return;
    await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS));
  }
}

async function applyPending(connection: ReservedSql, all: Migration[]): Promise<number[]> {
  await connection`
    create table if not exists schema_migrations (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`;
  const rows = await connection<{ version: number }[]>`select version from schema_migrations`;
  const applied = new Set(rows.map((row) => row.version));
  const done: number[] = [];
  for (const migration of all) {
    if (applied.has(migration.version)) continue;
    const record = () =>
      connection`insert into schema_migrations (version, name)
        values (${migration.version}, ${migration.name})`;
    if (migration.sql.startsWith(WITHOUT_TRANSACTION)) {
      for (const statement of statementsOf(migration.sql)) await connection.unsafe(statement);
      await record();
    } else {
      await connection.unsafe("begin");
      try {
        await connection.unsafe(migration.sql);
        await record();
        await connection.unsafe("commit");
      } catch (error) {
        if (connectionSurvived(error)) await connection.unsafe("rollback");
        throw error;
      }
    }
    done.push(migration.version);
  }
  return done;
}

/** A migration's statements: split at each `;` that ends a line, comments and blanks dropped. */
export function statementsOf(text: string): string[] {
  const code = text.split("\n").filter((line) => !line.trimStart().startsWith("--")).join("\n");
  return code.split(/;[ \t]*(?:\n|$)/).map((statement) => statement.trim()).filter(Boolean);
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
