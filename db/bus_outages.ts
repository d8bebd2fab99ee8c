import type { Sql } from "postgres";
import { withErrorTranslation } from "./errors.ts";

/**
 * This instance's NATS outages, kept in the database (migration 0010) so that one outlives the
 * process that had it. What an instance publishes while cut off (bans, disconnects, edits,
 * read marks) is lost to the others, and its resync request on reconnect is what makes it
 * good; a process that ends before it reconnects (a restart, a crash, a deploy) never sends it,
 * so the next instance to start sends it instead. Nothing here throws: failures go to
 * `onError`, and a record that could not be written or removed is written again at the next
 * attempt to reconnect, or left to the next start (a resync too many costs a replay, nothing
 * more).
 */
export interface BusOutages {
  /**
   * The connection is lost, or still lost at another attempt to get it back: payloads may
   * have been lost for `lostForMs` so far. Recorded, keeping the earliest beginning; settles
   * once written or reported.
   */
  lost(lostForMs: number): Promise<void>;
  /**
   * The connection is back and the resync request published: once `delivered` says NATS has
   * it, the record goes, unless the connection was lost again meanwhile. A request for outages
   * left behind that was not confirmed at the start (resyncLeftBehind) is sent again now.
   */
  recovered(delivered: () => Promise<boolean>): Promise<void>;
  /**
   * Sends one resync request (`request`) for the outages other instances recorded and never
   * ended, reaching back to the earliest; once `delivered`, their records go (a record its
   * instance, still cut off, writes again is then recorded anew). Resolves with how far back the
   * request reached, or undefined when there was none to send. Not confirmed (or the records not
   * read), it is owed: sent again at the next reconnect (`recovered`), else by the next start.
   */
  resyncLeftBehind(
    request: (lostForMs: number) => void,
    delivered: () => Promise<boolean>,
  ): Promise<number | undefined>;
}

interface OutageRow {
  instance_id: string;
  lost_since: Date;
  lost_for_ms: number;
}

/** The outages of instance `instanceId` over postgres.js. */
export function createBusOutages(
  sql: Sql,
  options: { instanceId: string; onError: (error: unknown, context: string) => void },
): BusOutages {
  const { instanceId, onError } = options;
  // bounded in time and translated, like every store call: a hung connection must not hold the
  // queue of writes below for good
  const rows = withErrorTranslation({
    async record(lostForMs: number): Promise<void> {
      // to the millisecond, so that the row read back as a Date names it exactly
      await sql`
        insert into bus_outages (instance_id, lost_since)
        values (${instanceId},
                date_trunc('milliseconds', now() - ${lostForMs} * interval '1 millisecond'))
        on conflict (instance_id) do update
          set lost_since = least(bus_outages.lost_since, excluded.lost_since)`;
    },
    async remove(): Promise<void> {
      await sql`delete from bus_outages where instance_id = ${instanceId}`;
    },
    async ofOthers(): Promise<OutageRow[]> {
      return await sql<OutageRow[]>`
        select instance_id, lost_since,
               ceil(extract(epoch from now() - lost_since) * 1000)::float8 as lost_for_ms
        from bus_outages where instance_id <> ${instanceId}`;
    },
    /** Removes the rows as they were read; one written again since stays. */
    async settle(outages: readonly OutageRow[]): Promise<void> {
      for (const outage of outages) {
        await sql`delete from bus_outages
                  where instance_id = ${outage.instance_id} and lost_since = ${outage.lost_since}`;
      }
    },
  });

  let lossesReported = 0;
  // one at a time, in the order reported: a removal must not overtake the record before it
  let writes = Promise.resolve();
  function inOrder(write: () => Promise<void>, context: string): Promise<void> {
    writes = writes.then(write).catch((error) => onError(error, context));
    return writes;
  }
  // Losses reported while a record waits its turn join it: with the database slow as well, one
  // a second (each attempt to reconnect) would otherwise queue up without end.
  let waitingRecord: { lostForMs: number; written: Promise<void> } | undefined;
  /** How to ask for the resync of outages left behind, while that request is owed. */
  let leftBehindOwed: ((lostForMs: number) => void) | undefined;

  async function resyncLeftBehind(
    request: (lostForMs: number) => void,
    delivered: () => Promise<boolean>,
  ): Promise<number | undefined> {
    leftBehindOwed = request;
    try {
      const outages = await rows.ofOthers();
      if (outages.length === 0) {
        leftBehindOwed = undefined;
        return undefined;
      }
      const lostForMs = Math.max(...outages.map((outage) => outage.lost_for_ms));
      request(lostForMs);
      if (await delivered()) {
        leftBehindOwed = undefined;
        await rows.settle(outages);
      }
      return lostForMs;
    } catch (error) {
      onError(error, "resync for NATS outages left behind");
      return undefined;
    }
  }

  return {
    lost(lostForMs) {
      lossesReported++;
      if (waitingRecord) {
        waitingRecord.lostForMs = Math.max(waitingRecord.lostForMs, lostForMs);
        return waitingRecord.written;
      }
      const record = { lostForMs, written: Promise.resolve() };
      waitingRecord = record;
      record.written = inOrder(() => {
        waitingRecord = undefined;
        return rows.record(record.lostForMs);
      }, "record a NATS outage");
      return record.written;
    },

    async recovered(delivered) {
      const lossesBefore = lossesReported;
      if (leftBehindOwed) await resyncLeftBehind(leftBehindOwed, delivered);
      if (!(await delivered())) return;
      await inOrder(async () => {
        if (lossesReported === lossesBefore) await rows.remove();
      }, "remove the record of a NATS outage");
    },

    resyncLeftBehind,
  };
}
