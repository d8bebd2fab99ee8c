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
