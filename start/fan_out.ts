import type { Sql } from "postgres";
import type { Bus } from "../bus/bus.ts";
import { createMemoryBus } from "../bus/memory_bus.ts";
import { createNatsBus, UNNOTICED_LOSS_MS } from "../bus/nats_bus.ts";
import { createSubjects, type Subjects } from "../bus/subjects.ts";
import { type ChatFeed, createChatFeed } from "../chat/feed.ts";
import type { ChatStore } from "../chat/ports.ts";
import type { Config } from "../config.ts";
import { type BusOutages, createBusOutages } from "../db/bus_outages.ts";
import { logger } from "../observability/log.ts";
import type { Metrics } from "../observability/metrics.ts";
import { type ShutdownSequence, type ShutdownStep, untilDeadline } from "../shutdown.ts";
import { logError } from "./log_error.ts";

/** How events go between instances, and this instance's feed of them to its sockets. */
export interface FanOut {
  bus: Bus;
  feed: ChatFeed;
  subjects: Subjects;
}

/**
 * Connects the bus (NATS at NATS_URL, else in process) and starts the feed over it. Each adds to
 * `shutdown` the step that closes it, once opened: the feed closes, then the bus drains. An
 * outage that an earlier instance ended with is made good here, by a resync request.
 */
export async function openFanOut(
  config: Config,
  shutdown: ShutdownSequence,
  deps: { sql: Sql; store: ChatStore; metrics: Metrics; instanceId: string },
): Promise<FanOut> {
  const { sql, store, metrics, instanceId } = deps;
  let bus: Bus;
  // assigned below, after the bus it reads from; `onReconnect` may run before that
  let feed: ChatFeed | undefined;
  let outages: BusOutages | undefined;
  if (config.NATS_URL) {
    // kept in the database, so that an outage this process ends with is made good by the next
    const natsOutages = outages = createBusOutages(sql, { instanceId, onError: logError });
    bus = await createNatsBus({
      servers: config.NATS_URL,
      name: `chat-${instanceId.slice(0, 8)}`,
      onError: (error) => logError(error, "nats"),
      onLoss: natsOutages.lost,
      onReconnect: (lostForMs) => {
        metrics.natsReconnects.inc();
        logger("bus").info("reconnected to NATS");
        // user events and amendments have no seq: every instance checks its sockets'
        // access against the store, and sends the edits, deletions and read marks again.
        // First, so that the sockets a lost removal may concern hold what the catch-up brings.
        feed?.requestResync(lostForMs);
        // once NATS has the request, the outage's record can go
        if (feed) void natsOutages.recovered(() => bus.check());
        // what other instances published meanwhile is in the store; what this one published
        // meanwhile, the others learn of from each chat's newest message sent again
        feed?.catchUp().catch((error) => logError(error, "catch up after reconnect"));
        feed?.republishRecent();
      },
    });
  } else {
    // a handler that throws is logged, as on NATS, not taken for an uncaught error that ends us
    bus = createMemoryBus({ onError: (error) => logError(error, "bus") });
  }
  shutdown.add(busDrain(bus, outages, shutdown));
  const subjects = createSubjects(config.NATS_SUBJECT_PREFIX);
  const chatFeed = feed = createChatFeed({ bus, store, subjects }, {
    onError: logError,
    sweepEveryMs: config.FEED_SWEEP_SECONDS * 1000,
    onRecovered: (messages) => metrics.messagesRecovered.inc(messages),
    onAmendmentsRecovered: (amendments) => metrics.amendmentsRecovered.inc(amendments),
    onReadTalliesDiffering: (chats) => metrics.readTalliesDiffering.inc(chats),
  });
  // a sweep under way ends first, its statements with it: the pools end after this step. One
  // the store holds up is left at the deadline
  shutdown.add(async (deadline) => {
    await untilDeadline(chatFeed.close(), deadline, "the feed's sweep");
  });
  const lostForMs = await outages?.resyncLeftBehind(
    (lostForMs) => chatFeed.requestResync(lostForMs),
    () => bus.check(),
  );
  if (lostForMs !== undefined) {
    logger("bus").warn("asked for a resync: an instance ended while cut off from NATS", {
      lost_for_ms: lostForMs,
    });
  }
  return { bus, feed: chatFeed, subjects };
}

/**
 * The bus's shutdown step: publishes of writes that finished during the shutdown go out before
 * the connection ends.
 */
function busDrain(
  bus: Bus,
  outages: BusOutages | undefined,
  shutdown: ShutdownSequence,
): ShutdownStep {
  return async (deadline) => {
    // A quarter of what is left at least: when a step before used up the deadline (a write
    // that hung), a healthy NATS is still drained, not taken for lost and recorded below.
    // Past it the connection is closed, not left to reconnect after the shutdown.
    const drainBound = shutdown.notBefore(deadline, 0.25);
    const closed = bus.close(drainBound);
    if (await untilDeadline(closed, drainBound, "NATS drain")) return;
    // NATS did not answer the drain: the connection may have been lost without the client
    // noticing yet, and what this instance published since with it. Recorded as an outage of
    // the longest such loss, so that the next instance to start sends the resync in its place.
    if (outages) {
      const recording = outages.lost(UNNOTICED_LOSS_MS);
      // half of what is left of the timeout: the pools still need the rest to end
      const bound = AbortSignal.timeout(shutdown.secondsLeft() * 500);
      await untilDeadline(recording, bound, "recording the unanswered drain as a NATS outage");
    }
    // closed outright at drainBound: it sends nothing more, so it does not wait on NATS
    await closed;
  };
}
