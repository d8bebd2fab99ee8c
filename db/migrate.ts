import type { ReservedSql, Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import { errorCode, LOCK_NOT_AVAILABLE } from "./errors.ts";
import { connectionLost, watchReservation } from "./reservation_watch.ts";
import { cancelStatement } from "./statement_deadline.ts";
import { connectionSurvived } from "./transactions.ts";

const migrationsDir = new URL("./migrations/", import.meta.url);

/** Any constant will do; every instance must use the same one. */
export const MIGRATION_LOCK_KEY = 727_001;

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

/**
 * Reads `db/migrations/NNNN_name.sql` in version order. Rejects two files of one version (two
 * branches merged): the second would fail on its record, and later starts take it for applied.
 */
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
  migrations.sort((a, b) => a.version - b.version || a.name.localeCompare(b.name));
  for (const [i, migration] of migrations.entries()) {
    const next = migrations[i + 1];
    if (next?.version !== migration.version) continue;
    const file = (m: Migration) => `${String(m.version).padStart(4, "0")}_${m.name}.sql`;
    throw new Error(
      `two migrations of version ${migration.version}: ${file(migration)}, ${file(next)} ` +
        "(renumber the newer one)",
    );
  }
  return migrations;
}

/** How long the database has to answer before migrating: the first thing a start asks of it. */
const FIRST_ANSWER_MS = 10_000;

/**
 * How long a statement of a migration waits for a lock before its transaction is rolled back
 * and tried again later. An `alter table` queued behind a long transaction (a report, a
 * forgotten `psql` session) holds off every send to that table while it waits, and a send
 * stalled 4 s answers `unavailable`: sends wait at most this long per try.
 */
const LOCK_TIMEOUT_MS = 1_000;

/** How long a migration keeps trying for its locks before the start gives up. */
const LOCK_WAIT_MS = 5 * 60_000;

/** The longest pause between two tries of a migration whose locks were held. */
const MAX_LOCK_RETRY_PAUSE_MS = 15_000;

export interface MigrateOptions {
  /** See FIRST_ANSWER_MS. */
  firstAnswerMs?: number;
  /** See LOCK_TIMEOUT_MS. */
  lockTimeoutMs?: number;
  /** See LOCK_WAIT_MS. */
  lockWaitMs?: number;
  /**
   * Told when the migration lock has been held by another session for `lockHeldNoticeMs`, and
   * again each time as long again: a start waiting there in silence looks hung. `heldBy` is the
   * holder's application_name (an instance's `chat-<id>`), null when it has none or is gone.
   */
  onMigrationLockHeld?: (wait: { waitedMs: number; heldBy: string | null }) => void;
  /** See LOCK_HELD_NOTICE_MS. */
  lockHeldNoticeMs?: number;
  /** Told each time a migration could not take its locks and will be tried again. */
  onLockWait?: (migration: Migration, retryInMs: number) => void;
  /**
   * Told of the migrations the database has and this code does not know, newest last: a newer
   * release applied them (an older instance left running in a rolling deploy, or a rollback).
   * The start goes on, as migrations only add what older code can ignore.
   */
  onNewerApplied?: (applied: Array<{ version: number; name: string }>) => void;
}

/**
 * Applies the migrations not yet recorded in `schema_migrations`, in order, each in a
 * transaction of its own (or none, see WITHOUT_TRANSACTION), under an advisory lock: instances
 * starting together apply each one once. A migration in a transaction that waits longer than
 * `lockTimeoutMs` for a lock is rolled back and tried again after a pause, so that it never
 * holds off sends for long. Returns the versions applied by this call. Rejects with a ChatError
 * `unavailable` when the database does not answer a first query within `firstAnswerMs`, or a
 * migration's locks stay held for `lockWaitMs` (a migration itself may take as long as it
 * takes); with an Error naming the migration that failed otherwise, the database's as its cause.
 */
export async function migrate(
  sql: Sql,
  migrations?: Migration[],
  options: MigrateOptions = {},
): Promise<number[]> {
  const all = migrations ?? await readMigrations();
  await firstAnswer(sql, options.firstAnswerMs ?? FIRST_ANSWER_MS);
  // one connection for the lock and every migration: a pool of one cannot lend a second
  const connection = await sql.reserve();
  const watch = watchReservation();
  let reusable = true;
  try {
    await lockMigrations(connection, watch, options);
    const session = { timeoutsOff: false };
    try {
      return await applyPending(connection, all, { ...options, session, watch });
    } finally {
      // what failed before is the error to report; a connection that may still hold the lock,
      // or the timeouts turned off, must not go back to the pool, where it would stop every
      // later migration, or run the service's queries without the database's timeouts; one
      // lost took the lock with it, and must be sent nothing more
      if (watch.lost) reusable = false;
      else {
        await connection`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`
          .catch(() => (reusable = false));
        for (const setting of session.timeoutsOff ? SESSION_TIMEOUTS : []) {
          if (reusable) await connection.unsafe(`reset ${setting}`).catch(() => (reusable = false));
        }
      }
    }
  } catch (error) {
    // a connection lost meanwhile is postgres.js's to reconnect: releasing it would act on it
    if (watch.lost || !connectionSurvived(error)) reusable = false;
    throw error;
  } finally {
    if (reusable) connection.release();
  }
}

/** Turned off for migrations without a transaction, and given back to the database's after. */
const SESSION_TIMEOUTS = ["statement_timeout", "lock_timeout"] as const;

/** Between tries of the lock while another instance migrates. */
const LOCK_RETRY_MS = 200;

/** How long the migration lock may be held by another before onMigrationLockHeld is told. */
const LOCK_HELD_NOTICE_MS = 10_000;

/**
 * Takes the migration lock, trying again until it is free rather than waiting in
 * `pg_advisory_lock`: a session waiting there holds a snapshot, and `create index concurrently`
 * in the session holding the lock waits for every snapshot to end, so the two would deadlock.
 */
async function lockMigrations(
  connection: ReservedSql,
  watch: ReturnType<typeof watchReservation>,
  options: MigrateOptions,
): Promise<void> {
  const noticeMs = options.lockHeldNoticeMs ?? LOCK_HELD_NOTICE_MS;
  const started = Date.now();
  let nextNotice = started + noticeMs;
  for (;;) {
    // no parameters: postgres.js hands `onexecute` the connection only for a statement it
    // need not describe first
    const [{ locked }] = await connection.unsafe<[{ locked: boolean }]>(
      `select pg_try_advisory_lock(${MIGRATION_LOCK_KEY}) as locked`,
      [],
      watch.options,
    );
    if (locked) return;
    if (options.onMigrationLockHeld && Date.now() >= nextNotice) {
      nextNotice += noticeMs;
      const [holder] = await connection.unsafe<[{ name: string | null }?]>(
        `select nullif(a.application_name, '') as name
         from pg_locks l join pg_stat_activity a on a.pid = l.pid
         where l.locktype = 'advisory' and l.granted and l.classid = 0
           and l.objid = ${MIGRATION_LOCK_KEY} and l.objsubid = 1
         limit 1`,
        [],
        watch.options,
      );
      options.onMigrationLockHeld({ waitedMs: Date.now() - started, heldBy: holder?.name ?? null });
    }
    await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS));
    // lost during the pause: a try sent on it now would end the process (reservation_watch.ts)
    if (watch.lost) throw connectionLost();
  }
}

async function applyPending(
  connection: ReservedSql,
  all: Migration[],
  options: MigrateOptions & {
    session: { timeoutsOff: boolean };
    watch: ReturnType<typeof watchReservation>;
  },
): Promise<number[]> {
  await connection`
    create table if not exists schema_migrations (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`;
  const rows = await connection<{ version: number; name: string }[]>`
    select version, name from schema_migrations order by version`;
  const lockTimeoutMs = options.lockTimeoutMs ?? LOCK_TIMEOUT_MS;
  const applied = new Set(rows.map((row) => row.version));
  const known = new Set(all.map((migration) => migration.version));
  const newer = rows.filter((row) => !known.has(row.version));
  if (newer.length > 0) options.onNewerApplied?.(newer);
  const done: number[] = [];
  for (const migration of all) {
    if (applied.has(migration.version)) continue;
    try {
      const record = () =>
        connection`insert into schema_migrations (version, name)
          values (${migration.version}, ${migration.name})`;
      // A statement_timeout or lock_timeout the database or role gives the service's sessions
      // (as many deployments do) is not for migrations: one may take as long as it takes, and an
      // index built concurrently waits for older transactions through locks, which it must not
      // give up half-way. One in a transaction sets its own lock_timeout; the session's are
      // given back after the last migration (migrate).
      if (migration.sql.startsWith(WITHOUT_TRANSACTION)) {
        if (!options.session.timeoutsOff) {
          options.session.timeoutsOff = true;
          for (const setting of SESSION_TIMEOUTS) await connection.unsafe(`set ${setting} = 0`);
        }
        for (const statement of statementsOf(migration.sql)) await connection.unsafe(statement);
        await record();
      } else {
        await retriedWhileLocked(migration, { ...options, lockTimeoutMs }, async () => {
          // lost during the pause before this try: a begin sent on it now would end the process
          if (options.watch.lost) throw connectionLost();
          await connection.unsafe("begin");
          try {
            await connection.unsafe(`set local lock_timeout = ${lockTimeoutMs}`);
            await connection.unsafe("set local statement_timeout = 0");
            await connection.unsafe(migration.sql);
            await record();
            await connection.unsafe("commit");
          } catch (error) {
            if (connectionSurvived(error)) await connection.unsafe("rollback");
            throw error;
          }
        });
      }
    } catch (error) {
      throw failedMigration(migration, error);
    }
    done.push(migration.version);
  }
  return done;
}

/**
 * The error of a migration that failed, naming it: the database's says what went wrong, not in
 * which file. A lost connection, and a ChatError (its locks held: named already), stay as they
 * are for the caller.
 */
function failedMigration(migration: Migration, error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof ChatError || !connectionSurvived(error)) {
    return error;
  }
  const name = `migration ${migration.version} (${migration.name})`;
  return new Error(`${name} failed: ${error.message}`, { cause: error });
}

/**
 * Runs `attempt` (one transaction of `migration`) until it does not fail on a lock timeout,
 * pausing longer each time; rejects with `unavailable` once the locks were held for
 * `lockWaitMs`. (Not for migrations without a transaction: `create index concurrently` waits
 * for older transactions through locks too, and must not give up half-way for that.)
 */
async function retriedWhileLocked(
  migration: Migration,
  options: MigrateOptions & { lockTimeoutMs: number },
  attempt: () => Promise<void>,
): Promise<void> {
  const giveUpAt = Date.now() + (options.lockWaitMs ?? LOCK_WAIT_MS);
  for (
    let pauseMs = options.lockTimeoutMs;;
    pauseMs = Math.min(pauseMs * 2, MAX_LOCK_RETRY_PAUSE_MS)
  ) {
    try {
      return await attempt();
    } catch (error) {
      if (errorCode(error) !== LOCK_NOT_AVAILABLE) throw error;
      const retryInMs = Math.min(pauseMs, giveUpAt - Date.now());
      if (retryInMs <= 0) {
        throw new ChatError(
          "unavailable",
          `migration ${migration.version} (${migration.name}) could not take its locks: ` +
            "a long transaction holds its tables (see pg_stat_activity)",
          { cause: error },
        );
      }
      options.onLockWait?.(migration, retryInMs);
      await new Promise((resolve) => setTimeout(resolve, retryInMs));
    }
  }
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
  cancelStatement(query);
  query.catch(() => {});
  const { host, port } = sql.options;
  throw new ChatError(
    "unavailable",
    `the database at ${host.join(",")}:${port.join(",")} did not answer within ${ms / 1000} s`,
  );
}
