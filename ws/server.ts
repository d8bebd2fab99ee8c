import { AuthError, tokenFromRequest, type TokenVerifier } from "../auth/verifier.ts";
import { ChatError } from "../chat/errors.ts";
import type { ChatFeed } from "../chat/feed.ts";
import type { ChatService } from "../chat/service.ts";
import { logger } from "../observability/log.ts";
import type { MediaMetrics, SocketMetrics } from "../observability/metrics.ts";
import { CloseCode, closeCodeFor } from "./errors.ts";
import { Connection, type ConnectionDeps, type ConnectionLimits } from "./connection.ts";
import { type Endpoint, endpointOf } from "./endpoint.ts";
import { earlyFrameLimit, FrameIntake, type Taken } from "./frame_intake.ts";
import { createAccessChecks } from "./access_checks.ts";
import { createSanctionScreens, startSanctionSweeps } from "./sanction_screens.ts";
import { createExpirySchedule } from "./expiry_schedule.ts";
import { createMediaRoutes } from "./media_routes.ts";
import type { StallLimits } from "./stalled_body.ts";
import type { RequestLimits } from "./request_limits.ts";
import { createDemoRoutes } from "../demo/routes.ts";

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, boolean>;
}

export interface HttpDeps {
  service: ChatService;
  feed: ChatFeed;
  verifier: TokenVerifier;
  readiness: () => Promise<ReadinessReport>;
  /** Prometheus text; absent: 404. */
  metrics?: () => Promise<string>;
  now: () => number;
  /** Told of failures; `fields` carry the `connection_id` when one socket is concerned. */
  onError: (error: unknown, context: string, fields?: Record<string, unknown>) => void;
  /** Instruments the sockets and media routes feed; absent: nothing is measured. */
  instruments?: SocketMetrics & MediaMetrics;
}

export interface HttpOptions {
  maxFrameBytes: number;
  idleTimeoutSeconds: number;
  limits: ConnectionLimits;
  maxSocketsPerUser: number;
  /** Origins allowed to open sockets; empty: any. */
  allowedOrigins: readonly string[];
  /** Per-user limits of the media routes on this instance. */
  mediaLimits: RequestLimits;
  /** When an upload that sends too little is ended. */
  uploadStall: StallLimits;
  /** Serves the demo chat page at `/` (DEMO_PAGE). */
  demoPage?: boolean;
  /** How often the store's recent bans and disconnects are looked at (startSanctionSweeps). */
  sanctionSweepMs?: number;
}

/**
 * The HTTP side of the service: WebSocket endpoints, health and metrics. It knows
 * Request/Response and the chat service, nothing of the admin plane.
 */
export function createHttpHandler(deps: HttpDeps, options: HttpOptions) {
  const connections = new Set<Connection>();
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
  const media = createMediaRoutes(deps, options);
  const demo = options.demoPage ? createDemoRoutes(deps) : null;
  const log = logger("ws");
  /** Set by shutdown(): no new sockets. */
  let draining = false;
  // One object for every socket: closures made per socket would hold its handshake's state
  // (the token's promise, the early frames) for as long as the socket is open.
  const connectionDeps: ConnectionDeps = {
    service: deps.service,
    feed: deps.feed,
    maxFrameBytes: options.maxFrameBytes,
    limits: options.limits,
    now: deps.now,
    onError: (error, context, connection) =>
      deps.onError(error, context, { connection_id: connection.id }),
    onClose: (connection, code) => {
      log.debug("socket closed", { connection_id: connection.id, code });
      tokenExpiries.delete(connection, connection.tokenExpiresAt);
      countUser(connection.userId, -1);
      if (connections.delete(connection)) {
        deps.instruments?.openSockets.dec({ endpoint: connection.endpoint.kind });
      }
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

  function upgrade(request: Request, endpoint: Endpoint): Response {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade\n", { status: 426 });
    }
    if (draining) {
      return new Response("shutting down, reconnect\n", {
        status: 503,
        headers: { "retry-after": "1" },
      });
    }
    const origin = request.headers.get("origin");
    if (origin && options.allowedOrigins.length > 0 && !options.allowedOrigins.includes(origin)) {
      return new Response("origin not allowed\n", { status: 403 });
    }
    // read before the upgrade: reading the request after it throws "Request closed"
    const token = tokenFromRequest(request);
    const upgraded = upgradeOf(request, options.idleTimeoutSeconds);
    if (typeof upgraded === "string") {
      return new Response(`malformed WebSocket upgrade: ${upgraded}\n`, { status: 400 });
    }
    const { socket, response } = upgraded;
    // Started before the handshake (which follows the 101 returned below) so verification
    // overlaps it; failures close after it.
    const principal = token === null
      ? Promise.reject(new AuthError("missing", "no token"))
      : deps.verifier.verify(token);
    principal.catch(() => {});
    // Every line about this socket carries its id; never the token or frame contents.
    const connectionId = crypto.randomUUID();
    // Frames a client sends before its token is checked are taken in as they come, by the
    // intake the connection goes on with, and wait here in order: only the frames its queue
    // would hold keep their contents (the rest wait as their answers), and at most as many as
    // the connection takes before it closes the socket for flooding.
    const intake = new FrameIntake(connectionDeps);
    const early: Taken[] = [];
    /**
     * Set once the socket is refused for what it sent before its token was checked: it is
     * closing, and is never taken in (it would hold a place of its user's, and a connection, for
     * as long as its client leaves the close unanswered).
     */
    let refused = false;
    /** Closes a socket that never gets a connection; `reason` is always our own words. */
    const refuse = (code: number, reason: string) => {
      refused = true;
      log.debug("socket refused", { connection_id: connectionId, code, reason });
      socket.onmessage = null;
      socket.close(code, reason);
    };
    socket.onmessage = (event) => {
      const taken = intake.take(event.data);
      if (taken.to === "close") return refuse(taken.code, taken.reason);
      if (early.length >= earlyFrameLimit(options.limits)) {
        return refuse(CloseCode.tooMany, "flooding");
      }
      early.push(taken);
    };
    socket.onopen = async () => {
      // runs once: its listener need not stay with the socket for its whole life
      socket.onopen = null;
      let verified;
      try {
        verified = await principal;
      } catch (error) {
        if (error instanceof AuthError) return refuse(CloseCode.tokenInvalid, "invalid token");
        // a key set that cannot be fetched is no fault of the token: 1013, try again later
        if (!(error instanceof ChatError)) deps.onError(error, "token check");
        return refuse(closeCodeFor(error), "cannot check the token now");
      }
      if (refused) return;
      if (draining) return refuse(CloseCode.restarting, "server shutting down");
      // an unknown chat id of the wrong shape is as unknown as any other
      if (endpoint.kind === "chat" && !isUuid(endpoint.chatId)) {
        return refuse(CloseCode.forbidden, "forbidden");
      }
      if ((perUser.get(verified.userId) ?? 0) >= options.maxSocketsPerUser) {
        return refuse(CloseCode.tooMany, "too many connections");
      }
      countUser(verified.userId, 1);
      const connection = new Connection(
        socket,
        connectionId,
        verified,
        endpoint,
        connectionDeps,
        intake,
      );
      if (!connection.closed) {
        connections.add(connection);
        tokenExpiries.add(connection, connection.tokenExpiresAt);
        deps.instruments?.openSockets.inc({ endpoint: endpoint.kind });
        log.debug("socket opened", {
          connection_id: connectionId,
          endpoint: endpoint.kind,
          user_id: verified.userId,
          ...(endpoint.kind === "chat" ? { chat_id: endpoint.chatId } : {}),
        });
      }
      for (const taken of early.splice(0)) connection.takeIn(taken);
    };
    return response;
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const endpoint = endpointOf(url.pathname);
    if (endpoint) return upgrade(request, endpoint);
    if (media.handles(url.pathname)) return await media.handle(request, url);
    if (demo?.handles(url.pathname)) return await demo.handle(request, url);
    switch (url.pathname) {
      case "/healthz":
        return new Response("ok\n");
      case "/readyz": {
        const report = await deps.readiness();
        return Response.json(report, { status: report.ready ? 200 : 503 });
      }
      case "/metrics":
        if (!deps.metrics) break;
        return new Response(await deps.metrics(), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
    }
    return new Response("not found\n", { status: 404 });
  }

  return {
    /** The Deno.serve handler; errors become a 500 here and nowhere else. */
    async fetch(request: Request): Promise<Response> {
      try {
        return await handle(request);
      } catch (error) {
        deps.onError(error, "http");
        return new Response("internal error\n", { status: 500 });
      }
    },
    /** Open sockets on this instance. */
    get connectionCount(): number {
      return connections.size;
    },
    /**
     * Stops the WebSocket plane gracefully: new sockets are refused (503), each open socket
     * finishes the frame it is handling (so its ack goes out) and is closed with 1012; new
     * uploads are refused (503) and those under way are answered (see the media routes' drain).
     * Resolves when every socket has closed or its client had a second to answer the close (a
     * connection still closing then is the HTTP server's to cut); when `signal` aborts first,
     * closes the rest at once, without waiting for the frames they are handling, and gives
     * their clients a moment to answer the close.
     */
    async shutdown(signal?: AbortSignal): Promise<void> {
      draining = true;
      // side by side with the sockets: both must be done before the server stops
      const uploads = media.drain(signal);
      stopResync();
      sanctionSweeps?.stop();
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
      await uploads;
    },
    /** Tells every socket to reconnect elsewhere (1012). */
    closeAll(code: number = CloseCode.restarting, reason = "server shutting down"): void {
      for (const connection of [...connections]) connection.close(code, reason);
    },
  };
}

export type HttpHandler = ReturnType<typeof createHttpHandler>;

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

/**
 * The socket and its 101 answer, or why the request is no WebSocket handshake: Deno refuses one
 * that lacks `Connection: Upgrade` or `Sec-WebSocket-Key` with a TypeError, whose message names
 * the header in its own words (never the request's). That is the client's error, not ours.
 */
function upgradeOf(request: Request, idleTimeout: number) {
  try {
    return Deno.upgradeWebSocket(request, { idleTimeout });
  } catch (error) {
    if (error instanceof TypeError) return error.message;
    throw error;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const isUuid = (value: string) => UUID.test(value);
