import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Sql } from "postgres";
import { watchReservation } from "./reservation_watch.ts";
import { timedOut } from "./statement_deadline.ts";
import { connectionSurvived } from "./transactions.ts";

/**
 * Sends `data` to `statement`, a `COPY … FROM STDIN`, on a connection reserved from `sql`, and
 * resolves once PostgreSQL has stored it. Errors: postgres.js's own, or ChatError `unavailable`
 * when the copy, waiting for a connection included, took more than `timeoutMs`.
 *
 * Reserved, because postgres.js pipelines a query onto a busy pooled connection when none is
 * free, and one in COPY either refuses it (`COPY_IN_PROGRESS`) or, if the COPY has not begun
 * yet, sends it into the COPY's data, and PostgreSQL drops the connection with every query queued
 * on it.
 *
 * Bounded, because postgres.js finishes the COPY's stream only when PostgreSQL says the COPY is
 * complete: a connection lost after the last data was sent leaves it unfinished for good, and
 * the caller waiting with it. Past the time the connection is ended if it is still this copy's:
 * in an unknown state of COPY, it must not serve anyone else; postgres.js reconnects it for the
 * pool.
 */
export async function copyIn(
  sql: Sql,
  statement: string,
  data: Iterable<Uint8Array>,
  options: { timeoutMs: number },
): Promise<void> {
  const expiry = Promise.withResolvers<never>();
  const expired = timedOut();
  const timer = setTimeout(() => expiry.reject(expired), options.timeoutMs);
  try {
    const reserving = sql.reserve();
    const reserved = await Promise.race([reserving, expiry.promise]).catch((error) => {
      // a connection that comes after all goes back at once
      reserving.then((late) => late.release(), () => {});
      throw error;
    });
    const watch = watchReservation();
    const copying = (async () => {
      const writable = await reserved.unsafe(statement, [], watch.options).writable();
      await pipeline(Readable.from(data), writable);
    })();
    try {
      await Promise.race([copying, expiry.promise]);
    } catch (error) {
      if (error === expired) {
        copying.catch(() => {});
        // unless it was lost meanwhile: postgres.js has then taken it back, maybe reused it
        watch.terminate();
      } else if (connectionSurvived(error)) {
        reserved.release();
      }
      // else postgres.js has taken the connection back to reconnect it: a release would hand
      // the pool a closed socket
      throw error;
    }
    reserved.release();
  } finally {
    clearTimeout(timer);
  }
}
