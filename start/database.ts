import type { Sql } from "postgres";
import type { Config } from "../config.ts";
import { startEmbeddedPostgres } from "../db/embedded.ts";
import { reportLostConnectionRejections, STORE_TIMEOUT_MS } from "../db/errors.ts";
import { migrate, type MigrateOptions } from "../db/migrate.ts";
import { connectPool, connectWriterPool, type LockTimeoutMissing } from "../db/pools.ts";
import { WRITER_LANES } from "../db/writer_lanes.ts";
import { logger } from "../observability/log.ts";
import type { ShutdownSequence } from "../shutdown.ts";
import { logLostConnection } from "./log_error.ts";

/** The database's connections, migrated. */
export interface Database {
  /** The pool of the store, the admin queries and the sweeps (DATABASE_POOL_SIZE). */
  sql: Sql;
  /** The message writer's own connections, one per lane (see createPostgresStore). */
  writerSql: Sql;
  /** Readiness's own connection. */
  readinessSql: Sql;
  /** Whether it is the embedded development database (PGlite), DATABASE_URL being unset. */
  embedded: boolean;
}

/**
 * How the message writer's connections get their lock_timeout back. PgBouncer's
 * ignore_startup_parameters drops the setting, and its track_extra_parameters (1.20 and later)
 * passes on only parameters that PostgreSQL reports to clients, which lock_timeout is not.
 */
const LOCK_TIMEOUT_ADVICE =
  'connect to PostgreSQL directly, not through PgBouncer (README, "Scaling out")';

/**
 * Opens DATABASE_URL, or the embedded database in DATA_DIR when it is unset, and migrates it.
 * Each thing it opens adds to `shutdown` the step that closes it, once opened: the pools end
 * (side by side), then the embedded database stops.
 */
export async function openDatabase(
  config: Config,
  shutdown: ShutdownSequence,
  options: { instanceId: string; writerLockTimeoutMs: number },
): Promise<Database> {
  const { instanceId, writerLockTimeoutMs } = options;
  const embedded = config.DATABASE_URL ? undefined : await startEmbeddedPostgres(config.DATA_DIR);
  if (embedded) shutdown.add(() => embedded.close());
  reportLostConnectionRejections(logLostConnection);
  const databaseUrl = config.DATABASE_URL ?? embedded!.url;
  // Queries still running get what is left of the time, then their connections end (an
  // unfinished transaction rolls back: nothing is half-written). The pools end side by side:
  // one after another, each could take all that is left, and a stalled database makes each
  // one wait for it. The step comes first, so it runs last.
  const pools: Sql[] = [];
  shutdown.add(async () => {
    const timeout = shutdown.secondsLeft();
    await Promise.all(pools.map((pool) => pool.end({ timeout })));
  });
  const sql = connectPool(databaseUrl, {
    max: embedded ? 4 : config.DATABASE_POOL_SIZE,
    instanceId,
  });
  pools.push(sql);
  // Readiness asks on a connection of its own: queries that fill the pool (slow admin lists)
  // must not make a database that answers look away, and take instances out under load.
  const readinessSql = connectPool(databaseUrl, { max: 1, instanceId });
  pools.push(readinessSql);
  await migrate(sql, undefined, MIGRATION_WARNINGS);
  // The message writer's own connections, one per lane (see createPostgresStore); a chat row
  // locked from outside fails that chat's writes, not its lane's (see WRITER_LOCK_TIMEOUT_MS).
  const writerSql = await connectWriterPool(databaseUrl, {
    max: WRITER_LANES,
    instanceId,
    lockTimeoutMs: writerLockTimeoutMs,
    // Read on its first connection, as a pooler treats them all alike. The embedded
    // development database has no lock_timeout (README): no news there.
    onLockTimeoutMissing: (missing) => {
      if (!embedded) warnLockTimeoutMissing(missing, writerLockTimeoutMs);
    },
  });
  pools.push(writerSql);
  return { sql, writerSql, readinessSql, embedded: embedded !== undefined };
}

/** What the migrations warn of while they wait, or when the database is ahead of them. */
const MIGRATION_WARNINGS: MigrateOptions = {
  onMigrationLockHeld: ({ waitedMs, heldBy }) =>
    logger("db").warn(
      "waiting for the migration lock another session holds (another instance migrating)",
      { waited_ms: waitedMs, held_by: heldBy },
    ),
  onLockWait: (migration, retryInMs) =>
    logger("db").warn("a migration waits for a long transaction to end", {
      migration: `${migration.version}_${migration.name}`,
      retry_in_ms: retryInMs,
    }),
  onNewerApplied: (migrations) =>
    logger("db").warn(
      "the database has migrations this release does not know: a newer release applied them",
      {
        migrations: migrations.map(({ version, name }) => `${version}_${name}`),
        ends_warning: "run the newer release on every instance",
      },
    ),
};

function warnLockTimeoutMissing(
  { inEffectMs, refusal }: LockTimeoutMissing,
  writerLockTimeoutMs: number,
) {
  logger("db").warn(
    "the message writer's connections run without its lock_timeout: a chat row held from " +
      "outside holds up every chat of its writer lane for the lock_timeout they have, or " +
      "with none until the store timeout",
    {
      reason: refusal?.message ??
        "the setting the connection asked for at its start is not in effect (a pooler " +
          "in between took it and dropped it)",
      lock_timeout_ms: writerLockTimeoutMs,
      lock_timeout_ms_in_effect: inEffectMs,
      store_timeout_ms: STORE_TIMEOUT_MS,
      ends_warning: LOCK_TIMEOUT_ADVICE,
    },
  );
}
