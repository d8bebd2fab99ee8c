import postgres, { type Sql } from "postgres";

/** The longest a pool waits before it tries to connect again (postgres.js's `backoff`). */
export const RECONNECT_BACKOFF_MAX_MS = 1_000;

/**
 * A postgres.js pool as the service uses it: named after its instance in `pg_stat_activity`,
 * reading times in ISO 8601 whatever the database's DateStyle, quick to give up connecting,
 * and quick to reconnect after an outage. With `lockTimeoutMs`, its statements wait at most
 * that long for a lock (`lock_timeout`, set as each connection starts: no statement of its own).
 */
export function connectPool(
  url: string,
  options: { max: number; instanceId: string; lockTimeoutMs?: number | undefined },
): Sql {
  return postgres(url, {
    max: options.max,
    connect_timeout: 5,
    // postgres.js waits up to 20 s (3^retries / 100) before reconnecting once the database has
    // refused a few times; queries wait for that, so an outage of a minute would make sends
    // hang instead of answering `unavailable`, and recovery lag behind the database. At most a
    // second between attempts (with jitter) keeps both short.
    backoff: (retries: number) =>
      (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, RECONNECT_BACKOFF_MAX_MS / 1000),
    idle_timeout: 60,
    onnotice: () => {},
    connection: {
      application_name: `chat-${options.instanceId.slice(0, 8)}`,
      // postgres.js reads times as the server writes them, with `new Date(text)`: a database
      // or role whose DateStyle is SQL or German (`07/12/2026 ...`, `07.12.2026 ...`) had every
      // time read with day and month swapped, or not at all. ISO whatever the database says;
      // PgBouncer passes this startup parameter on.
      DateStyle: "ISO",
      ...(options.lockTimeoutMs === undefined ? {} : { lock_timeout: options.lockTimeoutMs }),
    },
  });
}

/** The message writer's connections run without the lock_timeout they asked for. */
export interface LockTimeoutMissing {
  /** The lock_timeout they have instead, in milliseconds; 0 for none. */
  inEffectMs: number;
  /** Why: the pooler refused the startup parameter; undefined when it took it and dropped it. */
  refusal: postgres.PostgresError | undefined;
}

/**
 * The message writer's pool: connectPool with `lockTimeoutMs`, its first connection opened at
 * once so that nothing is sent on a pool that is then replaced. A pooler that refuses
 * `lock_timeout` as a startup parameter (PgBouncer in session mode) gets a pool without it
 * instead. The first connection's lock_timeout is read back (in place of a bare `select 1`):
 * a pooler may also take the parameter and drop it (PgBouncer's `ignore_startup_parameters`),
 * and the database may set one of its own. When it is not `lockTimeoutMs`, `onLockTimeoutMissing`
 * hears so once. Any other refusal is thrown, as postgres.js gave it.
 */
export async function connectWriterPool(
  url: string,
  options: {
    max: number;
    instanceId: string;
    lockTimeoutMs: number;
    onLockTimeoutMissing: (missing: LockTimeoutMissing) => void;
  },
): Promise<Sql> {
  let refusal: postgres.PostgresError | undefined;
  let writer: { pool: Sql; lockTimeoutMs: number };
  try {
    writer = await opened(connectPool(url, options));
  } catch (error) {
    // PostgreSQL itself takes the setting: only a pooler in between names it in a refusal
    if (!(error instanceof postgres.PostgresError && error.message.includes("lock_timeout"))) {
      throw error;
    }
    refusal = error;
    writer = await opened(connectPool(url, { ...options, lockTimeoutMs: undefined }));
  }
  if (writer.lockTimeoutMs !== options.lockTimeoutMs) {
    options.onLockTimeoutMissing({ inEffectMs: writer.lockTimeoutMs, refusal });
  }
  return writer.pool;
}

/**
 * `pool` once a connection of it has answered, with the lock_timeout its statements have (in
 * milliseconds); ended, and the refusal thrown, if none does.
 */
async function opened(pool: Sql): Promise<{ pool: Sql; lockTimeoutMs: number }> {
  try {
    const [row] = await pool<[{ ms: number }]>`
      select setting::int as ms from pg_settings where name = 'lock_timeout'`;
    return { pool, lockTimeoutMs: row.ms };
  } catch (error) {
    await pool.end();
    throw error;
  }
}
