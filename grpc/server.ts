import * as grpc from "@grpc/grpc-js";
import type { PackageDefinition, ServiceDefinition } from "@grpc/proto-loader";
import type { AdminStore, EventBus, Subjects } from "../chat/ports.ts";
import type { ChatService } from "../chat/service.ts";
import type { TlsPair, TlsProblem } from "../config_tls.ts";
import { createAdmission } from "./admission.ts";
import { followCertificateExpiry } from "./certificate_expiry.ts";
import { followCertificateRenewal } from "./certificate_renewal.ts";
import { createTokenCheck } from "./auth.ts";
import { createEventHub } from "./event_hub.ts";
import { createChatHandlers } from "./handlers/chats.ts";
import { createMemberHandlers } from "./handlers/members.ts";
import { createMessageHandlers } from "./handlers/messages.ts";
import { createModerationHandlers } from "./handlers/moderation.ts";
import { createStatsHandlers } from "./handlers/stats.ts";
import { createWatchEvents, DEFAULT_MAX_WATCH_STREAMS } from "./handlers/watch_events.ts";
import { logger } from "../observability/log.ts";
import { createLogBudget } from "../observability/log_budget.ts";
import { createHealthReporter, type ReadinessSource } from "./health.ts";
import { type GrpcListener, startGrpcListener } from "./listener.ts";
import { createPageTokens } from "./page_token.ts";
import { addReflection } from "./reflection.ts";
import { readLongDeadlines } from "./long_deadlines.ts";
import { createConnectionCap } from "./connection_cap.ts";
import { followHttp2Servers } from "./http2_servers.ts";
import { createPingPolicy } from "./ping_policy.ts";
import { startTlsFront, type TlsFront } from "./tls_front.ts";
import { ADMIN_SERVICE, loadAdminProto } from "./proto.ts";
import { isServerFault, toCallStatus, unauthenticated } from "./status.ts";

export interface GrpcDeps {
  service: ChatService;
  /** The admin plane's lists and search. */
  queries: AdminStore;
  /** WatchEvents follows chat events on the bus. */
  bus: EventBus;
  subjects: Subjects;
  /** WatchEvents streams end when an instance asks for a resync (ChatFeed.onResync). */
  onResync: (listener: () => void) => () => void;
  /** Health follows it. */
  readiness: ReadinessSource;
  /** Open WebSocket connections of this instance (GetStats). */
  activeConnections: () => number;
  instanceId: string;
  onError: (error: unknown, context: string) => void;
}

export interface GrpcOptions {
  host: string;
  /** 0: any free port (see `port` of the result). */
  port: number;
  /** Required: the plane never runs without it. */
  adminToken: string;
  /**
   * The certificate (chain) and its private key, PEM text; unset: plaintext. With `reread`, the
   * pair is read again every `reread.everyMs` and a renewed one served to new connections.
   */
  tls?: TlsPair & {
    reread?: { read: (signal: AbortSignal) => Promise<TlsPair | TlsProblem>; everyMs: number };
  };
  /** WatchEvents: events a stream may fall behind by before it is ended. */
  watchBuffer?: number;
  /** WatchEvents streams open at once; default DEFAULT_MAX_WATCH_STREAMS. */
  maxWatchStreams?: number;
  /**
   * Calls open at once on one connection; default the WatchEvents streams allowed plus
   * OTHER_CALLS_PER_CONNECTION.
   */
  maxStreamsPerConnection?: number;
  /** How long `close` lets calls finish before cutting them. */
  shutdownTimeoutMs?: number;
  /** Health `Watch` streams open at once; default MAX_HEALTH_WATCHES. */
  maxHealthWatches?: number;
  /** Calls of callers without a token waiting for their request message; default MAX_WAITING_CALLS. */
  maxWaitingCalls?: number;
  /** Connections open at once; default MAX_CONNECTIONS. */
  maxConnections?: number;
  /** How long a connection with no call open is kept; default IDLE_CONNECTION_MS. */
  idleConnectionMs?: number;
  /** How often a client may ping; default PING_POLICY. */
  pingPolicy?: { minIntervalMs: number; maxStrikes: number };
  /** How often each connection is pinged, and how long its answer may take; default KEEPALIVE. */
  keepalive?: { intervalMs: number; timeoutMs: number };
}

/**
 * A client whose machine or network vanished sends no FIN or RST, and a stream with nothing to
 * write (a WatchEvents of a quiet chat) would hold its place, its subscription and its
 * connection for good. Each connection is pinged every `intervalMs`; one whose answer takes
 * longer than `timeoutMs` is closed, ending its calls as cancelled.
 */
export const KEEPALIVE = { intervalMs: 60_000, timeoutMs: 20_000 };

/**
 * A connection with no call open for this long is closed (GOAWAY; the client connects again at
 * its next call). Keepalive finds only peers that are gone: a tool that opens a connection per
 * run and never closes it would otherwise hold a descriptor of the process (which the WebSocket
 * plane counts on) for as long as it lives. A connection with a stream open, a WatchEvents stream
 * of a quiet chat too, is not idle; so no limit on a connection's age is set, which would cut such
 * streams. Below grpc-js's and grpc-go's own client idle timeout (30 minutes), so leaked channels
 * are let go of here first; a client that sets its own below this one closes first and never
 * hears the GOAWAY (Deno 2.9's node:http2 can crash on a GOAWAY to a long idle session,
 * denoland/deno#36788).
 */
export const IDLE_CONNECTION_MS = 10 * 60_000;

/**
 * The longest request message taken, in bytes. The longest the contract has is a few KiB (a
 * SearchMessages query, filters and page token; a moderation reason of 1,000 characters), while
 * grpc-js takes up to 4 MiB, and holds a message's bytes until the whole of it has come, before
 * any handler (the token check included) sees it: a client with no token could have the server
 * hold 4 MiB per stream it opened. A longer message is refused with RESOURCE_EXHAUSTED as soon
 * as its length is read.
 */
export const MAX_REQUEST_BYTES = 64 * 1024;

/**
 * Calls other than WatchEvents one connection may have open at once, besides as many WatchEvents
 * streams as the instance allows (so a consumer holding them all can still call). Without a bound
 * a connection takes streams without end (HTTP/2 allows 2^32 by default): a tool calling in a loop
 * without waiting for the answers would have the server hold every call's state (about 30 KiB,
 * and the request) and queue every one for a database connection. A client past the bound waits
 * for a place on its connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS), so its excess costs it a
 * wait, not the server memory.
 */
export const OTHER_CALLS_PER_CONNECTION = 100;

export interface GrpcServer {
  /** The port actually bound. */
  port: number;
  /** WatchEvents calls holding a place: open streams and calls still looking up their chat. */
  readonly watchStreams: number;
  /**
   * Health turns NOT_SERVING, watch and reflection streams end with UNAVAILABLE, calls in
   * flight may finish (up to `shutdownTimeoutMs`, or until `deadline` aborts), then the rest
   * are cut.
   */
  close(deadline?: AbortSignal): Promise<void>;
}

function serviceDefinition(definition: PackageDefinition, name: string): ServiceDefinition {
  const service = definition[name];
  if (!service || "format" in service) throw new Error(`${name} is not a service of the proto`);
  return service;
}

/**
 * grpc-js's own diagnostics as log lines of the service: by itself it writes them to standard
 * error as text, which a log collector cannot read. What it reports as an error is a warning
 * here: it is thrown to the caller as well (a port it cannot bind), or concerns what a client
 * sent. Only the text before the first ": " is kept: what follows may quote a header's value,
 * such as a token. At most GRPC_DIAGNOSTICS_BUDGET lines a minute: a caller decides how many
 * reports it causes.
 */
function logGrpcDiagnostics() {
  const log = logger("grpc");
  // a caller reaches them before any token is checked: a header gRPC cannot hold is one line
  // each, so a call with many, sent again and again, would otherwise write without bound
  const budget = createLogBudget(GRPC_DIAGNOSTICS_BUDGET);
  const report = (level: "warn" | "info" | "debug", message: string) => (text: unknown) => {
    if (!log.isEnabledFor(level === "warn" ? "warning" : level)) return;
    const leftOut = budget.take();
    if (leftOut === undefined) return;
    log[level](message, {
      grpc_js: String(text).split(": ")[0]!.slice(0, GRPC_DIAGNOSTIC_CHARS),
      ...(leftOut > 0 ? { left_out: leftOut } : {}),
    });
  };
  grpc.setLogger({
    error: report("warn", "grpc-js reported a problem"),
    info: report("info", "grpc-js reported"),
    debug: report("debug", "grpc-js reported"),
  });
}

/** grpc-js reports logged a minute at most; `left_out` on the next line counts the rest. */
const GRPC_DIAGNOSTICS_BUDGET = { lines: 10, windowMs: 60_000 };
/** What is kept of one report: a header's name may be as long as a client makes it. */
const GRPC_DIAGNOSTIC_CHARS = 200;

/**
 * Starts the gRPC admin plane (chat.admin.v1.ChatAdmin, grpc.health.v1.Health, server
 * reflection) beside the WebSocket plane: both call the same domain service, share the
 * database and the bus, and never call each other. Every ChatAdmin call is authenticated here;
 * every error becomes a status in `toCallStatus`. Throws a plain Error without an admin token.
 */
export async function startGrpcServer(deps: GrpcDeps, options: GrpcOptions): Promise<GrpcServer> {
  logGrpcDiagnostics();
  readLongDeadlines();
  const authorized = createTokenCheck(options.adminToken);
  const definition = await loadAdminProto();
  const handlerDeps = {
    service: deps.service,
    queries: deps.queries,
    tokens: createPageTokens(options.adminToken),
  };
  const unary: Record<string, (request: unknown, signal: AbortSignal) => Promise<object>> = {
    ...createChatHandlers(handlerDeps),
    ...createMemberHandlers(handlerDeps),
    ...createMessageHandlers(handlerDeps),
    ...createModerationHandlers(handlerDeps),
    ...createStatsHandlers(deps),
  };
  const watch = createWatchEvents({ ...deps, hub: createEventHub(deps) }, {
    ...(options.watchBuffer === undefined ? {} : { maxBuffered: options.watchBuffer }),
    ...(options.maxWatchStreams === undefined ? {} : { maxStreams: options.maxWatchStreams }),
  });

  const implementation: grpc.UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(unary)) {
    implementation[name] = ((call, callback) => {
      if (!authorized(call.metadata)) return callback(unauthenticated());
      // aborts when the client cancels or its deadline passes (grpc-js also says "cancelled"
      // once a call has been answered, when there is nothing left to stop)
      const gone = new AbortController();
      call.once("cancelled", () => gone.abort());
      handler(call.request, gone.signal).then(
        (reply) => callback(null, reply),
        (error) => {
          if (isServerFault(error)) deps.onError(error, `grpc ${name}`);
          callback(toCallStatus(error));
        },
      );
    }) satisfies grpc.handleUnaryCall<unknown, object>;
  }
  implementation.WatchEvents = ((call) => {
    if (!authorized(call.metadata)) return void call.emit("error", unauthenticated());
    watch.WatchEvents(call).catch((error) => {
      if (isServerFault(error)) deps.onError(error, "grpc WatchEvents");
      call.emit("error", toCallStatus(error));
    });
  }) satisfies grpc.handleServerStreamingCall<unknown, never>;

  const health = createHealthReporter(
    deps.readiness,
    options.maxHealthWatches === undefined ? {} : { maxWatches: options.maxHealthWatches },
  );
  const admission = createAdmission(
    authorized,
    options.maxWaitingCalls === undefined ? {} : { maxWaiting: options.maxWaitingCalls },
  );
  const pings = createPingPolicy(options.pingPolicy);
  const keepalive = options.keepalive ?? KEEPALIVE;
  const maxStreamsPerConnection = options.maxStreamsPerConnection ??
    (options.maxWatchStreams ?? DEFAULT_MAX_WATCH_STREAMS) + OTHER_CALLS_PER_CONNECTION;
  // Not set: "grpc.max_connection_age_ms", which would cut WatchEvents streams (see
  // IDLE_CONNECTION_MS), and "grpc-node.max_session_memory", which grpc-js leaves unlimited as
  // node:http2 degrades badly at it; a connection's memory is bounded by its streams instead.
  const server = new grpc.Server({
    "grpc.max_concurrent_streams": maxStreamsPerConnection,
    "grpc.max_connection_idle_ms": options.idleConnectionMs ?? IDLE_CONNECTION_MS,
    "grpc.keepalive_time_ms": keepalive.intervalMs,
    "grpc.keepalive_timeout_ms": keepalive.timeoutMs,
    "grpc.max_receive_message_length": MAX_REQUEST_BYTES,
    // the first wraps the call nearest the stream: what admission sends itself passes through it
    interceptors: [pings.interceptor, admission.interceptor],
  });
  // a ChatAdmin call with the admin token: its connection is not cut for one without it
  const adminPath = `/${ADMIN_SERVICE}/`;
  const connections = createConnectionCap(
    options.maxConnections,
    (headers) =>
      String(headers[":path"] ?? "").startsWith(adminPath) &&
      authorized(grpc.Metadata.fromHttp2Headers(headers)),
  );
  followHttp2Servers(server, (http2Server) => {
    http2Server.on("session", connections.follow);
    http2Server.on("session", pings.follow);
  });
  server.addService(serviceDefinition(definition, ADMIN_SERVICE), implementation);
  health.addToServer(server);
  const reflection = addReflection(server, definition);

  const { tls } = options;
  await health.start();
  let listener: GrpcListener | undefined;
  let port: number;
  let front: TlsFront | undefined;
  let expiry: { stop(): void } | undefined;
  let renewal: { stop(): Promise<void> } | undefined;
  try {
    // With TLS, grpc-js listens in plaintext on loopback behind the TLS front (tls_front.ts).
    listener = await startGrpcListener(
      server,
      tls ? { host: "127.0.0.1", port: 0 } : { host: options.host, port: options.port },
    );
    port = listener.port;
    if (tls) {
      expiry = followCertificateExpiry(tls.cert);
      const tlsFront = startTlsFront({
        cert: tls.cert,
        key: tls.key,
        host: options.host,
        port: options.port,
        upstreamPort: port,
      });
      front = tlsFront;
      port = front.port;
      if (tls.reread) {
        renewal = followCertificateRenewal({
          served: tls,
          read: tls.reread.read,
          everyMs: tls.reread.everyMs,
          renew(pair) {
            tlsFront.renew(pair);
            expiry?.stop();
            expiry = followCertificateExpiry(pair.cert);
          },
        });
      }
    }
  } catch (error) {
    await renewal?.stop();
    expiry?.stop();
    await listener?.close();
    health.stop();
    server.forceShutdown();
    throw error;
  }

  let closing: Promise<void> | undefined;
  return {
    port,
    get watchStreams() {
      return watch.size;
    },
    close(deadline) {
      return closing ??= (async () => {
        await listener.close();
        health.stop();
        reflection.close();
        watch.closeAll();
        admission.close();
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            deadline?.removeEventListener("abort", force);
            resolve();
          };
          const force = () => {
            server.forceShutdown();
            done();
          };
          const timer = setTimeout(force, options.shutdownTimeoutMs ?? 5_000);
          deadline?.addEventListener("abort", force, { once: true });
          server.tryShutdown(done);
          // a deadline that is already over fires no abort event
          if (deadline?.aborted) force();
        });
        await renewal?.stop();
        await front?.close();
        expiry?.stop();
      })();
    },
  };
}
