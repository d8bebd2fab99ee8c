import type { Sql } from "postgres";
import type { TokenVerifier } from "../auth/verifier.ts";
import type { Bus } from "../bus/bus.ts";
import type { Subjects } from "../bus/subjects.ts";
import type { ChatFeed } from "../chat/feed.ts";
import type { ChatService } from "../chat/service.ts";
import type { Config } from "../config.ts";
import { isPemText, readTlsPair, tlsPem } from "../config_tls.ts";
import { createAdminStore } from "../db/admin_store.ts";
import { type GrpcOptions, startGrpcServer } from "../grpc/server.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Readiness } from "../observability/readiness.ts";
import { type ShutdownSequence, untilDeadline } from "../shutdown.ts";
import { type HttpListener, startHttpListener } from "../ws/http_listener.ts";
import { createHttpHandler, type HttpOptions } from "../ws/server.ts";
import { listenFailure } from "./listen_failure.ts";
import { logError } from "./log_error.ts";

/** The ports the planes bound, which the system may have chosen (0). */
export interface Planes {
  /** The HTTP/WebSocket port. */
  port: number;
  /** The gRPC admin port; null when GRPC_ENABLED=0. */
  grpcPort: number | null;
}

/**
 * Starts the WebSocket plane on HOST:PORT and, with GRPC_ENABLED, the gRPC admin plane on
 * HOST:GRPC_PORT, both over the one domain service. Adds to `shutdown` the step that stops them
 * side by side. Rejects with a ListenFailure for a port it cannot listen on.
 */
export async function startPlanes(
  config: Config,
  shutdown: ShutdownSequence,
  deps: {
    service: ChatService;
    feed: ChatFeed;
    verifier: TokenVerifier;
    readiness: Readiness;
    metrics: Metrics;
    now: () => number;
    sql: Sql;
    bus: Bus;
    subjects: Subjects;
    instanceId: string;
    /** The most sockets this instance takes (socketLimit). */
    maxSockets: number;
  },
): Promise<Planes> {
  const { service, feed, readiness, metrics } = deps;
  const http = createHttpHandler({
    service,
    feed,
    verifier: deps.verifier,
    readiness: readiness.check,
    metrics: metrics.text,
    instruments: metrics,
    now: deps.now,
    onError: logError,
  }, httpOptions(config, deps.maxSockets));
  // The WebSocket and gRPC planes stop side by side, each with the whole deadline: a gRPC call
  // that holds its plane's shutdown must not eat the time sockets need to close with 1012.
  // Added before the port is bound: the handler already runs timers of its own (the sanction
  // sweep), which a port that cannot be bound must stop too.
  let server: HttpListener | undefined;
  const planes: Array<(deadline: AbortSignal) => Promise<void>> = [async (deadline) => {
    await http.shutdown(deadline);
    if (server) await untilDeadline(server.shutdown(), deadline, "HTTP server shutdown");
  }];
  shutdown.add(async (deadline) => {
    await Promise.all(
      planes.map((stop) => stop(deadline).catch((error) => logError(error, "shutdown"))),
    );
  });
  try {
    server = startHttpListener(http.fetch, { hostname: config.HOST, port: config.PORT });
  } catch (error) {
    throw listenFailure("PORT", config.HOST, config.PORT, error);
  }
  if (!config.GRPC_ENABLED) return { port: server.port, grpcPort: null };
  const admin = await startGrpcServer({
    service,
    queries: createAdminStore(deps.sql),
    bus: deps.bus,
    subjects: deps.subjects,
    onResync: (listener) => feed.onResync(listener),
    readiness,
    activeConnections: () => http.connectionCount,
    instanceId: deps.instanceId,
    onError: logError,
  }, grpcOptions(config)).catch((error) => {
    throw listenFailure("GRPC_PORT", config.HOST, config.GRPC_PORT, error);
  });
  planes.push((deadline) => admin.close(deadline));
  return { port: server.port, grpcPort: admin.port };
}

/** The WebSocket plane's settings. */
function httpOptions(config: Config, maxSockets: number): HttpOptions {
  return {
    maxFrameBytes: config.MAX_FRAME_BYTES,
    idleTimeoutSeconds: config.WS_IDLE_TIMEOUT_SECONDS,
    limits: {
      ratePerSecond: config.WS_RATE_PER_SECOND,
      rateBurst: config.WS_RATE_BURST,
      floodLimit: config.WS_FLOOD_LIMIT,
      maxBufferedBytes: config.WS_MAX_BUFFERED_BYTES,
    },
    maxSockets,
    maxSocketsPerUser: config.WS_MAX_SOCKETS_PER_USER,
    allowedOrigins: config.ALLOWED_ORIGINS,
    mediaLimits: {
      ratePerSecond: config.MEDIA_RATE_PER_SECOND,
      rateBurst: config.MEDIA_RATE_BURST,
      concurrent: {
        upload: config.MEDIA_MAX_UPLOADS_PER_USER,
        download: config.MEDIA_MAX_DOWNLOADS_PER_USER,
      },
    },
    downloadIdleMs: config.MEDIA_DOWNLOAD_IDLE_SECONDS * 1000,
    uploadStall: {
      idleMs: config.MEDIA_UPLOAD_IDLE_SECONDS * 1000,
      minBytesPerSecond: config.MEDIA_UPLOAD_MIN_BYTES_PER_SECOND,
    },
    demoPage: config.DEMO_PAGE &&
      (config.JWT_USER_CLAIM ? { userClaim: config.JWT_USER_CLAIM } : {}),
    sanctionSweepMs: config.FEED_SWEEP_SECONDS * 1000,
  };
}

/** The admin plane's settings. */
function grpcOptions(config: Config): GrpcOptions {
  const tls = tlsOptions(config);
  return {
    host: config.HOST,
    port: config.GRPC_PORT,
    adminToken: config.GRPC_ADMIN_TOKEN ?? "",
    ...(tls ? { tls } : {}),
    watchBuffer: config.GRPC_WATCH_BUFFER,
    maxWatchStreams: config.GRPC_MAX_WATCH_STREAMS,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT * 1000,
  };
}

/**
 * The admin plane's certificate and key (none: plaintext), read again every
 * GRPC_TLS_RELOAD_SECONDS when either is a file (PEM text in a variable changes only with a
 * restart).
 */
function tlsOptions(config: Config): GrpcOptions["tls"] {
  const { GRPC_TLS_CERT: cert, GRPC_TLS_KEY: key } = config;
  if (!cert || !key) return undefined;
  const pair = { cert: tlsPem(cert), key: tlsPem(key) };
  if (isPemText(cert) && isPemText(key)) return pair;
  return {
    ...pair,
    reread: {
      read: (signal) => readTlsPair(cert, key, signal),
      everyMs: config.GRPC_TLS_RELOAD_SECONDS * 1000,
    },
  };
}
