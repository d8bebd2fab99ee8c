import postgres, { type Sql } from "postgres";

/**
 * A postgres.js pool as the service uses it: named after its instance in `pg_stat_activity`,
 * quick to give up connecting, and quick to reconnect after an outage. With `lockTimeoutMs`,
 * its statements wait at most that long for a lock (`lock_timeout`, set as each connection
 * starts: no statement of its own).
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
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 1),
    idle_timeout: 60,
    onnotice: () => {},
    connection: {
      application_name: `chat-${options.instanceId.slice(0, 8)}`,
      ...(options.lockTimeoutMs === undefined ? {} : { lock_timeout: options.lockTimeoutMs }),
    },
  });
}

/**
 * The message writer's pool: connectPool with `lockTimeoutMs`, its first connection opened at
 * once so that nothing is sent on a pool that is then replaced. A pooler that refuses
 * `lock_timeout` as a startup parameter (PgBouncer in session mode, unless its
 * `ignore_startup_parameters` lists it) gets a pool without it instead, and
 * `onLockTimeoutRefused` hears so once. Any other refusal is thrown, as postgres.js gave it.
 */
export async function connectWriterPool(
  url: string,
  options: {
    max: number;
    instanceId: string;
    lockTimeoutMs: number;
    onLockTimeoutRefused: (error: postgres.PostgresError) => void;
  },
): Promise<Sql> {
  try {
    return await opened(connectPool(url, options));
  } catch (error) {
    // PostgreSQL itself takes the setting: only a pooler in between names it in a refusal
    if (!(error instanceof postgres.PostgresError && error.message.includes("lock_timeout"))) {
      throw error;
    }
    options.onLockTimeoutRefused(error);
  }
  return await opened(connectPool(url, { ...options, lockTimeoutMs: undefined }));
}

/** `pool` once a connection of it has answered; ended, and the refusal thrown, if none does. */
async function opened(pool: Sql): Promise<Sql> {
  try {
    await pool`select 1`;
    return pool;
  } catch (error) {
    await pool.end();
    throw error;
  }
}
