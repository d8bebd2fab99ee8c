import type { ChatFeed } from "../chat/feed.ts";
import type { ChatService } from "../chat/service.ts";
import { logger } from "../observability/log.ts";
import type { SocketMetrics } from "../observability/metrics.ts";
import { wireErrorCodeSchema } from "../protocol/server_frames.ts";
import { createAccessChecks } from "./access_checks.ts";
import type { UploadPlaces } from "./actions.ts";
import { createCloseCuts } from "./close_cuts.ts";
import type {
  Connection,
  ConnectionDeps,
  ConnectionLimits,
  DisconnectEvent,
} from "./connection.ts";
import { CloseCode } from "./errors.ts";
import { createExpirySchedule } from "./expiry_schedule.ts";
import { createSanctionScreens, startSanctionSweeps } from "./sanction_screens.ts";

export interface ConnectionRegistryDeps {
  service: ChatService;
  feed: ChatFeed;
  now: () => number;
  /** Told of failures; `fields` carry the `connection_id` when one socket is concerned. */
  onError: (error: unknown, context: string, fields?: Record<string, unknown>) => void;
  /** Instruments the sockets feed; absent: nothing is measured. */
  instruments?: SocketMetrics;
  /** The media routes' per-user limits: base64 media in a frame takes a place of an upload. */
  mediaRequests: UploadPlaces;
}

export interface ConnectionRegistryOptions {
  maxFrameBytes: number;
  limits: ConnectionLimits;
  maxSocketsPerUser: number;
  /**
   * How long a client may take to answer the close of a socket the server closed before its
   * connection is cut (WS_IDLE_TIMEOUT_SECONDS, as long as one may take to answer a ping).
   */
  idleTimeoutSeconds: number;
  /** How often the store's recent bans and disconnects are looked at (startSanctionSweeps). */
  sanctionSweepMs?: number;
}

/**
 * The open sockets of this instance: how many each user holds, when their tokens expire, their
 * checks against the store after a bus reconnect, and their close when the server stops.
 */
export function createConnectionRegistry(
  deps: ConnectionRegistryDeps,
  options: ConnectionRegistryOptions,
) {
  const connections = new Set<Connection>();
  if (deps.instruments) zeroSeries(deps.instruments);
  /** Open sockets per user on this instance. */
  const perUser = new Map<string, number>();
  const countUser = (userId: string, delta: number) => {
    const count = (perUser.get(userId) ?? 0) + delta;
    if (count > 0) perUser.set(userId, count);
    else perUser.delete(userId);
  };
  /** Every open socket, by when its token expires. */
  const tokenExpiries = createExpirySchedule<Connection>(
    (connection) => connection.close(CloseCode.tokenInvalid, "token expired"),
    { now: deps.now },
  );
  const log = logger("ws");
  /** Set by shutdown(): no new sockets. */
  let draining = false;
  const closeCuts = createCloseCuts(options.idleTimeoutSeconds * 1000);
  /** The ban events already handed to the screens (ConnectionDeps.confirmBan). */
  const bansHeard = new WeakSet<DisconnectEvent>();
  // One object for every socket: closures made per socket would hold its handshake's state
  // (the token's promise, the early frames) for as long as the socket is open.
  const connectionDeps: ConnectionDeps = {
    service: deps.service,
    feed: deps.feed,
    maxFrameBytes: options.maxFrameBytes,
    limits: options.limits,
    mediaRequests: deps.mediaRequests,
    now: deps.now,
    onError: (error, context, connection) =>
      deps.onError(error, context, { connection_id: connection.id }),
    onClose: (connection, code) => {
      log.debug("socket closed", { connection_id: connection.id, code });
      tokenExpiries.delete(connection, connection.tokenExpiresAt);
      // The place is given back once the connection is gone, not when it is told to close: a
      // client that never answers the close keeps it (and a slow reader's unsent frames) for
      // as long as it likes, and would otherwise open another in its place, without bound.
      void connection.handshakeClosed().then(() => countUser(connection.userId, -1));
      if (connections.delete(connection)) {
        deps.instruments?.openSockets.dec({ endpoint: connection.endpoint.kind });
      }
    },
    closeSocket: closeCuts.close,
    confirmBan: (event) => {
      // every socket of the user hears the one event; one read of the store answers them all
      if (bansHeard.has(event)) return;
      bansHeard.add(event);
      void sanctionScreens.confirmBan(event.user_id);
    },
    ...(deps.instruments ? { instruments: deps.instruments } : {}),
  };

  const accessChecks = createAccessChecks(() => connections, {
    onRequest: (waiting) =>
      log.info("checking sockets against the store after a bus reconnect", { waiting }),
    onChecked: (outcome) => {
      if (outcome !== "gone") deps.instruments?.accessChecks.inc({ outcome });
    },
    onUnanswered: () =>
      log.warning("the store did not answer an access check; the checks pause for 2 s"),
  });
  const sanctionScreens = createSanctionScreens(() => connections, {
    sanctionsOf: (userIds) => deps.service.sanctionsOf(userIds),
    onError: (error) => deps.onError(error, "sanction screen"),
    onScreened: (outcomes, swept) => {
      if (!swept) {
        log.info("screened sockets against bans and disconnects after a bus reconnect", outcomes);
      } else if (outcomes.closed > 0) {
        log.warning(
          "closed sockets of users banned or disconnected whose event never came",
          outcomes,
        );
      }
      for (const outcome of ["kept", "closed", "unanswered"] as const) {
        deps.instruments?.sanctionScreens.inc({ outcome }, outcomes[outcome]);
      }
    },
  });
  const sanctionSweeps = options.sanctionSweepMs === undefined ? undefined : startSanctionSweeps({
    sanctionedWithin: (window) => deps.service.sanctionedWithin(window),
    connected: (userId) => perUser.has(userId),
    screen: (users) => sanctionScreens.screen(users),
    onError: deps.onError,
  }, options.sanctionSweepMs);
  const stopResync = deps.feed.onResync(() => {
    // every socket holds what the catch-up brings until one query has read its user's sanctions
    void sanctionScreens.screen();
    accessChecks.request();
  });

  return {
    /** What every socket's Connection (and its FrameIntake) is made with. */
    connectionDeps,
    /** Set once shutdown() began: new sockets are refused. */
    get draining(): boolean {
      return draining;
    },
    /** Open sockets on this instance. */
    get size(): number {
      return connections.size;
    },
    /**
     * Takes a place of the user's for a socket about to get its Connection; false when the user
     * holds maxSocketsPerUser already. A Connection gives its place back once its socket's
     * close handshake is over (or its connection ended).
     */
    reserve(userId: string): boolean {
      if ((perUser.get(userId) ?? 0) >= options.maxSocketsPerUser) return false;
      countUser(userId, 1);
      return true;
    },
    /** Adds a Connection that is open: its token's expiry is watched from now on. */
    add(connection: Connection): void {
      connections.add(connection);
      tokenExpiries.add(connection, connection.tokenExpiresAt);
      deps.instruments?.openSockets.inc({ endpoint: connection.endpoint.kind });
    },
    /**
     * Refuses new sockets from now on; each open socket finishes the frame it is handling (so
     * its ack goes out) and is closed with 1012. Resolves when every socket has closed or its
     * client had a second to answer the close (a connection still closing then is cut, as is
     * that of a socket refused and still closing); when `signal` aborts first, closes the rest at once, without waiting for
     * the frames they are handling, and gives their clients a moment to answer the close.
     */
    async shutdown(signal?: AbortSignal): Promise<void> {
      draining = true;
      stopResync();
      const sweepStopped = sanctionSweeps?.stop();
      void accessChecks.stop();
      const open = [...connections];
      // A client that never answers the close (a lost network, a half-open connection) must not
      // hold the shutdown until its deadline: the steps after it need the time. Its socket is
      // left closing, and the server's own shutdown cuts it.
      const closing = Promise.all(open.map(async (connection) => {
        await connection.shutdown(CloseCode.restarting, "server shutting down");
        await settledWithin([connection.handshakeClosed()], CLOSE_REPLY_GRACE_MS);
      }));
      const { promise: aborted, resolve } = Promise.withResolvers<void>();
      const onAbort = () => resolve();
      if (signal?.aborted) resolve();
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        await Promise.race([closing, aborted]);
      } finally {
        signal?.removeEventListener("abort", onAbort);
      }
      for (const connection of [...connections]) {
        connection.close(CloseCode.restarting, "server shutting down");
      }
      // The close frames must be out before the server stops, or clients see 1001 instead:
      // also those of sockets that closed themselves (and left `connections`) but whose
      // handshake was still going on when time ran out.
      await settledWithin(open.map((connection) => connection.handshakeClosed()), CLOSE_GRACE_MS);
      // the clients that have not answered by now are cut, those of sockets refused too
      closeCuts.cutAll();
      // the sanction sweep's look under way, to its end or the deadline: the pools end later
      await Promise.race([sweepStopped, aborted]);
    },
  };
}

export type ConnectionRegistry = ReturnType<typeof createConnectionRegistry>;

/**
 * Every series of the sockets' labelled instruments, at 0 from the start: one that first appears
 * at 5 is, to Prometheus, one that never rose (`increase()` and `rate()` see nothing of a first
 * burst of `unavailable` errors, or of sockets closed for a ban).
 */
function zeroSeries(instruments: SocketMetrics): void {
  for (const endpoint of ["chat", "chats"] as const) instruments.openSockets.inc({ endpoint }, 0);
  for (const code of wireErrorCodeSchema.options) instruments.errors.inc({ code }, 0);
  for (const outcome of ["kept", "closed", "unanswered"] as const) {
    instruments.accessChecks.inc({ outcome }, 0);
    instruments.sanctionScreens.inc({ outcome }, 0);
  }
}

/** How long a forced shutdown waits for clients to answer the close frames it sent. */
const CLOSE_GRACE_MS = 500;
/**
 * How long a graceful shutdown waits for a client to answer its socket's close frame: ample for
 * a client that can still hear, short beside the SHUTDOWN_TIMEOUT the later steps share.
 */
const CLOSE_REPLY_GRACE_MS = 1_000;

async function settledWithin(promises: Array<Promise<void>>, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const elapsed = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  try {
    await Promise.race([Promise.all(promises), elapsed]);
  } finally {
    clearTimeout(timer);
  }
}
