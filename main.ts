// first: it listens for stop signals while the rest of the module graph is evaluated
import { onStopSignals, type StopSignal, stopSignalHeard } from "./stop_signals.ts";
import { createTokenVerifier, type JwtKeyConfig } from "./auth/verifier.ts";
import type { Bus } from "./bus/bus.ts";
import { createMemoryBus } from "./bus/memory_bus.ts";
import { createNatsBus, UNNOTICED_LOSS_MS } from "./bus/nats_bus.ts";
import { createSubjects } from "./bus/subjects.ts";
import { ChatError } from "./chat/errors.ts";
import type { Sql } from "postgres";
import { type ChatFeed, createChatFeed } from "./chat/feed.ts";
import { type ChatService, createChatService } from "./chat/service.ts";
import { type Config, ConfigError, loadConfig, redactConfig } from "./config.ts";
import { tlsPem } from "./config_tls.ts";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "./db/embedded.ts";
import { migrate } from "./db/migrate.ts";
import { checkDatabase } from "./db/database_check.ts";
import { createAdminStore } from "./db/admin_store.ts";
import { type BusOutages, createBusOutages } from "./db/bus_outages.ts";
import {
  isConnectionFailure,
  reportLostConnectionRejections,
  STORE_TIMEOUT_MS,
  translateDatabaseError,
} from "./db/errors.ts";
import { WRITER_LANES } from "./db/writer_lanes.ts";
import { connectPool, connectWriterPool } from "./db/pools.ts";
import { WRITER_LOCK_TIMEOUT_MS } from "./db/locked_chats.ts";
import { createPostgresStore } from "./db/postgres_store.ts";
import { withStoreMetrics } from "./db/store_metrics.ts";
import { createMediaPort } from "./media/media_port.ts";
import { createNatsMediaStore } from "./media/nats_media_store.ts";
import {
  createPostgresMediaStore,
  postgresMediaStoreWithin,
} from "./media/postgres_media_store.ts";
import { largestLimit } from "./media/kinds.ts";
import { abandonedUploadMs, startSweeps, type UploadSweep } from "./media/upload_sweep.ts";
import { sweepUnsentMedia } from "./media/unsent_media_sweep.ts";
import {
  configureLogging,
  errorFields,
  exitOnUncaughtErrors,
  literalMessage,
  logger,
} from "./observability/log.ts";
import { createMetrics } from "./observability/metrics.ts";
import { createReadiness, type Readiness } from "./observability/readiness.ts";
import { startGrpcServer } from "./grpc/server.ts";
import { ShutdownSequence, untilDeadline } from "./shutdown.ts";
import {
  countFreeDescriptors,
  descriptorsToCount,
  reportSocketLimit,
  socketLimit,
} from "./open_files.ts";
import { type HttpListener, startHttpListener } from "./ws/http_listener.ts";
import { createHttpHandler } from "./ws/server.ts";

export interface RunningService {
  /** The HTTP/WebSocket port actually bound. */
  port: number;
  /** The gRPC admin port actually bound; null when GRPC_ENABLED=0. */
  grpcPort: number | null;
  instanceId: string;
  /** The domain service, for in-process tools (development seed, tests). */
  chat: ChatService;
  /** Whether this instance should get traffic; the gRPC health service follows it. */
  readiness: Readiness;
  /** Graceful shutdown: sockets get 1012, writes finish, the bus drains, the pool ends. */
  close(): Promise<void>;
}

function jwtKey(config: Config): JwtKeyConfig {
  if (config.JWT_SECRET) return { kind: "secret", secret: config.JWT_SECRET };
  if (config.JWT_PUBLIC_KEY) {
    return { kind: "public_key", pem: config.JWT_PUBLIC_KEY.replaceAll("\\n", "\n") };
  }
  return { kind: "jwks", url: config.JWT_JWKS_URL! };
}

/** Every failure that is reported rather than thrown ends here, as one log line. */
function logError(error: unknown, context: string, fields: Record<string, unknown> = {}) {
  const properties = { context, ...fields, ...errorFields(error) };
  // a dependency that is away for a moment is a warning; the rest is a fault
  // `context` is always one of our own words, never input
  if (error instanceof ChatError && error.retryable) logger().warn(context, properties);
  else logger().error(`${context} failed`, properties);
}

function logLostConnection(error: unknown) {
  logError(translateDatabaseError(error), "database connection lost in the background");
}

/**
 * How the message writer's connections get their lock_timeout back. PgBouncer's
 * ignore_startup_parameters drops the setting, and its track_extra_parameters (1.20 and later)
 * passes on only parameters that PostgreSQL reports to clients, which lock_timeout is not.
 */
const LOCK_TIMEOUT_ADVICE =
  'connect to PostgreSQL directly, not through PgBouncer (README, "Scaling out")';

/** A port the start could not listen on, naming the setting to change and the address. */
export class ListenFailure extends Error {
  constructor(
    readonly setting: "PORT" | "GRPC_PORT" | "HOST",
    address: string,
    reason: string,
    cause: unknown,
  ) {
    super(`${setting}: cannot listen on ${address}: ${reason}`, { cause });
    this.name = "ListenFailure";
  }
}

/**
 * The database a start could not reach, as `database: host:port`: the error does not always say
 * (a TLS handshake the server would not do, with `sslmode=require`). None for the embedded one.
 */
function databaseNamed(error: unknown, config: Config): { database?: string } {
  if (!config.DATABASE_URL || !isConnectionFailure(error)) return {};
  if (!URL.canParse(config.DATABASE_URL)) return {};
  const { hostname, port } = new URL(config.DATABASE_URL);
  return { database: `${hostname}:${port || 5432}` };
}

/**
 * What the start could not listen on, as a ListenFailure: Deno's own error names neither the
 * setting nor the address, grpc-js's only the address. Other errors are returned as they are.
 */
function listenFailure(setting: "PORT" | "GRPC_PORT", host: string, port: number, error: unknown) {
  const text = error instanceof Error ? error.message : "";
  const address = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  const failure = (setting: "PORT" | "GRPC_PORT" | "HOST", reason: string) =>
    new ListenFailure(setting, address, reason, error);
  if (error instanceof Deno.errors.AddrInUse || /\bEADDRINUSE\b/.test(text)) {
    return failure(setting, "the address is in use");
  }
  if (error instanceof Deno.errors.AddrNotAvailable || /\bEADDRNOTAVAIL\b/.test(text)) {
    return failure("HOST", "no interface of this host has the address");
  }
  // a host name the resolver does not know (a typo), or could not ask about: Deno says why,
  // grpc-js only that it failed
  const lookup = /^failed to lookup address information: (.+)$/.exec(text);
  if (lookup || /^Name resolution failed\b/.test(text)) {
    return failure("HOST", `the name could not be resolved${lookup ? ` (${lookup[1]})` : ""}`);
  }
  if (error instanceof Deno.errors.PermissionDenied || /\bEACCES\b/.test(text)) {
    return failure(setting, "not permitted (a port below 1024 needs privileges)");
  }
  return error;
}

/**
 * The composition root: config -> sql -> store -> bus -> service -> planes. The order of
 * `close` is the reverse, so nothing in flight loses what it stands on.
 */
export async function startService(
  config: Config,
  options: {
    /**
     * What countFreeDescriptors found before the start, from which WS_MAX_SOCKETS follows when
     * unset; unknown (the default): WS_MAX_SOCKETS or 50000.
     */
    freeDescriptors?: number;
    /**
     * The writer's lock_timeout (default WRITER_LOCK_TIMEOUT_MS): a test that holds a chat row
     * while it does more than a loaded machine can in that time sets a longer one.
     */
    writerLockTimeoutMs?: number;
  } = {},
): Promise<RunningService> {
  const writerLockTimeoutMs = options.writerLockTimeoutMs ?? WRITER_LOCK_TIMEOUT_MS;
  const instanceId = crypto.randomUUID();
  const sockets = socketLimit(config, options.freeDescriptors);
  reportSocketLimit(sockets, options.freeDescriptors);
  const shutdown = new ShutdownSequence(
    config.SHUTDOWN_TIMEOUT * 1000,
    (error) => logError(error, "shutdown"),
  );
  try {
    let embedded: EmbeddedPostgres | undefined;
    if (!config.DATABASE_URL) {
      embedded = await startEmbeddedPostgres(config.DATA_DIR);
      shutdown.add(() => embedded!.close());
    }
    reportLostConnectionRejections(logLostConnection);
    const databaseUrl = config.DATABASE_URL ?? embedded!.url;
    // Queries still running get what is left of the time, then their connections end (an
    // unfinished transaction rolls back: nothing is half-written). The pools end side by side:
    // one after another, each could take all that is left, and a stalled database makes each
    // one wait for it. The step comes first, so it runs last.
    const pools: Sql[] = [];
    shutdown.add(async () => {
      const timeout = shutdown.secondsLeft();
      await Promise.all(pools.map((pool) => pool.end({ timeout })));
    });
    const sql = connectPool(databaseUrl, {
      max: embedded ? 4 : config.DATABASE_POOL_SIZE,
      instanceId,
    });
    pools.push(sql);
    // Readiness asks on a connection of its own: queries that fill the pool (slow admin lists)
    // must not make a database that answers look away, and take instances out under load.
    const readinessSql = connectPool(databaseUrl, { max: 1, instanceId });
    pools.push(readinessSql);
    const metrics = createMetrics();
    await migrate(sql, undefined, {
      onMigrationLockHeld: ({ waitedMs, heldBy }) =>
        logger("db").warn(
          "waiting for the migration lock another session holds (another instance migrating)",
          { waited_ms: waitedMs, held_by: heldBy },
        ),
      onLockWait: (migration, retryInMs) =>
        logger("db").warn("a migration waits for a long transaction to end", {
          migration: `${migration.version}_${migration.name}`,
          retry_in_ms: retryInMs,
        }),
      onNewerApplied: (migrations) =>
        logger("db").warn(
          "the database has migrations this release does not know: a newer release applied them",
          {
            migrations: migrations.map(({ version, name }) => `${version}_${name}`),
            ends_warning: "run the newer release on every instance",
          },
        ),
    });
    // The message writer's own connections, one per lane (see createPostgresStore); a chat row
    // locked from outside fails that chat's writes, not its lane's (see WRITER_LOCK_TIMEOUT_MS).
    const writerSql = await connectWriterPool(databaseUrl, {
      max: WRITER_LANES,
      instanceId,
      lockTimeoutMs: writerLockTimeoutMs,
      // Read on its first connection, as a pooler treats them all alike. The embedded
      // development database has no lock_timeout (README): no news there.
      onLockTimeoutMissing: ({ inEffectMs, refusal }) => {
        if (embedded) return;
        logger("db").warn(
          "the message writer's connections run without its lock_timeout: a chat row held from " +
            "outside holds up every chat of its writer lane for the lock_timeout they have, or " +
            "with none until the store timeout",
          {
            reason: refusal?.message ??
              "the setting the connection asked for at its start is not in effect (a pooler " +
                "in between took it and dropped it)",
            lock_timeout_ms: writerLockTimeoutMs,
            lock_timeout_ms_in_effect: inEffectMs,
            store_timeout_ms: STORE_TIMEOUT_MS,
            ends_warning: LOCK_TIMEOUT_ADVICE,
          },
        );
      },
    });
    pools.push(writerSql);
    const store = withStoreMetrics(createPostgresStore(sql, writerSql), metrics);

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
    // publishes of writes that finished during the shutdown go out before the connection ends
    shutdown.add(async (deadline) => {
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
    });
    const subjects = createSubjects(config.NATS_SUBJECT_PREFIX);
    const now = () => Date.now();
    const chatFeed = feed = createChatFeed({ bus, store, subjects }, {
      onError: logError,
      sweepEveryMs: config.FEED_SWEEP_SECONDS * 1000,
      onRecovered: (messages) => metrics.messagesRecovered.inc(messages),
      onAmendmentsRecovered: (amendments) => metrics.amendmentsRecovered.inc(amendments),
      onReadTalliesDiffering: (chats) => metrics.readTalliesDiffering.inc(chats),
    });
    shutdown.add(() => chatFeed.close());
    const lostForMs = await outages?.resyncLeftBehind(
      (lostForMs) => chatFeed.requestResync(lostForMs),
      () => bus.check(),
    );
    if (lostForMs !== undefined) {
      logger("bus").warn("asked for a resync: an instance ended while cut off from NATS", {
        lost_for_ms: lostForMs,
      });
    }
    const mediaLimits = {
      image: config.MEDIA_MAX_IMAGE_BYTES,
      audio: config.MEDIA_MAX_AUDIO_BYTES,
      video: config.MEDIA_MAX_VIDEO_BYTES,
    };
    // the uploads of instances killed mid-upload, deleted once surely dead
    const sweep: UploadSweep = {
      afterMs: abandonedUploadMs({
        largest: largestLimit(mediaLimits),
        idleMs: config.MEDIA_UPLOAD_IDLE_SECONDS * 1000,
        minBytesPerSecond: config.MEDIA_UPLOAD_MIN_BYTES_PER_SECOND,
      }),
      onSwept: (uploads) => metrics.mediaUploadsSwept.inc(uploads),
      onError: (error) => logError(error, "media upload sweep"),
    };
    const mediaStore = config.MEDIA_BACKEND === "nats"
      ? await createNatsMediaStore({
        servers: config.NATS_URL!,
        bucket: config.MEDIA_NATS_BUCKET,
        owner: config.NATS_SUBJECT_PREFIX,
        name: `chat-media-${instanceId.slice(0, 8)}`,
        sweep,
        // answered 503 as any NATS failure; PostgreSQL's disk full is an error logged too
        onFull: (error) => logError(error, "media upload to a full NATS bucket"),
      })
      : createPostgresMediaStore(sql, {
        // PGlite's socket server has no COPY FROM STDIN
        copy: embedded === undefined,
        sweep,
      });
    // The NATS store's drain gets no answer from a NATS that stalled: it must not hold the
    // steps after it (the bus's drain, which records such an outage) past the deadline. A share
    // of what is left at least, as for the bus: a close that needs a moment still gets it.
    shutdown.add(async (deadline) => {
      const bound = shutdown.notBefore(deadline, 0.25);
      // past it the store's connection is closed, not left to reconnect after the shutdown
      await untilDeadline(mediaStore.close(bound), bound, "media store close");
    });
    // Media never sent, deleted once past its retention; and (once a day) files no catalogue row
    // names, once begun longer ago than an upload may last. Pushed after the store's close, so
    // that it stops first: a sweep under way still has the store and the pool.
    const retentionMs = config.MEDIA_UNSENT_RETENTION_HOURS * 3600_000;
    // every series from the start, at 0: a series that first appears at 1 hides that increase
    for (const deleted of ["media", "blobs", "files"] as const) {
      metrics.mediaUnsentSwept.inc({ deleted }, 0);
    }
    const unsentSweeps = startSweeps(async (signal) => {
      const swept = await sweepUnsentMedia(sql, mediaStore, {
        // ages, measured on the database's clock: rows' created_at is its now(), not ours
        before: { ageMs: retentionMs },
        signal,
        uncataloguedBefore: { ageMs: sweep.afterMs },
        // counted as they go: a sweep that fails later has deleted them all the same
        onDeleted: (deleted, count) => metrics.mediaUnsentSwept.inc({ deleted }, count),
        // PGlite runs one connection's transaction at a time: the bytes go on the sweep's own
        ...(embedded && config.MEDIA_BACKEND !== "nats"
          ? { storeWithin: postgresMediaStoreWithin }
          : {}),
      });
      if (swept.skipped) {
        metrics.mediaUnsentSweepsSkipped.inc();
        logger("media").debug("sweep of unsent media skipped: another instance's is under way");
        return 0;
      }
      return swept.media + swept.blobs + swept.files;
    }, {
      afterMs: retentionMs,
      onSwept: (deleted) =>
        logger("media").info("deleted unsent media", { rows_and_files: deleted }),
      onError: (error) => logError(error, "sweep of unsent media"),
    });
    // stopped, a sweep ends after the blob it is deleting; one the database or the media store
    // holds up is left at the deadline (its transaction ends with the pool's)
    shutdown.add(async (deadline) => {
      await untilDeadline(unsentSweeps.stop(), deadline, "sweep of unsent media");
    });
    const media = createMediaPort(mediaStore, { limits: mediaLimits });
    const service = createChatService({ store, events: feed, now, media, onError: logError });
    const jwt = jwtKey(config);
    const verifier = await createTokenVerifier({
      key: jwt,
      ...(config.JWT_ISSUER ? { issuer: config.JWT_ISSUER } : {}),
      ...(config.JWT_AUDIENCE ? { audience: config.JWT_AUDIENCE } : {}),
      ...(config.JWT_USER_CLAIM ? { userClaim: config.JWT_USER_CLAIM } : {}),
    });
    // The key set is fetched now, not on the first token, so that a healthy instance is ready
    // at once; the start does not wait for it (a failure is logged, and readiness asks again).
    if (jwt.kind === "jwks") verifier.canVerify();

    const readiness = createReadiness({
      database: (signal) => checkDatabase(readinessSql, signal),
      ...(config.NATS_URL ? { nats: (signal: AbortSignal) => bus.check(signal) } : {}),
      ...(config.MEDIA_BACKEND === "nats"
        ? { media: (signal: AbortSignal) => mediaStore.check(signal) }
        : {}),
      // Without a key set not one token can be checked. Once one is held it keeps verifying
      // through an outage of the endpoint, which must not take every instance out at once.
      ...(jwt.kind === "jwks" ? { jwks: () => verifier.canVerify() } : {}),
    });
    const http = createHttpHandler(
      {
        service,
        feed,
        verifier,
        readiness: readiness.check,
        metrics: metrics.text,
        instruments: metrics,
        now,
        onError: logError,
      },
      {
        maxFrameBytes: config.MAX_FRAME_BYTES,
        idleTimeoutSeconds: config.WS_IDLE_TIMEOUT_SECONDS,
        limits: {
          ratePerSecond: config.WS_RATE_PER_SECOND,
          rateBurst: config.WS_RATE_BURST,
          floodLimit: config.WS_FLOOD_LIMIT,
          maxBufferedBytes: config.WS_MAX_BUFFERED_BYTES,
        },
        maxSockets: sockets.max,
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
      },
    );
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
    let grpcPort: number | null = null;
    if (config.GRPC_ENABLED) {
      const admin = await startGrpcServer({
        service,
        queries: createAdminStore(sql),
        bus,
        subjects,
        onResync: (listener) => chatFeed.onResync(listener),
        readiness,
        activeConnections: () => http.connectionCount,
        instanceId,
        onError: logError,
      }, {
        host: config.HOST,
        port: config.GRPC_PORT,
        adminToken: config.GRPC_ADMIN_TOKEN ?? "",
        ...(config.GRPC_TLS_CERT && config.GRPC_TLS_KEY
          ? { tls: { cert: tlsPem(config.GRPC_TLS_CERT), key: tlsPem(config.GRPC_TLS_KEY) } }
          : {}),
        watchBuffer: config.GRPC_WATCH_BUFFER,
        maxWatchStreams: config.GRPC_MAX_WATCH_STREAMS,
        shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT * 1000,
      }).catch((error) => {
        throw listenFailure("GRPC_PORT", config.HOST, config.GRPC_PORT, error);
      });
      planes.push((deadline) => admin.close(deadline));
      grpcPort = admin.port;
    }
    // Pushed last so that it runs first: the load balancer and the gRPC health service hear
    // "shutting down" before anything stops.
    shutdown.add(() => readiness.close());

    return {
      port: server.port,
      grpcPort,
      instanceId,
      chat: service,
      readiness,
      close: () => shutdown.run(),
    };
  } catch (error) {
    await shutdown.run();
    throw error;
  }
}

if (import.meta.main) {
  // configured before the configuration is read, so that a bad one is reported as a log line
  await configureLogging("info");
  // the lost connections' listener first: what it handles is no uncaught error
  reportLostConnectionRejections(logLostConnection);
  exitOnUncaughtErrors();
  const log = logger();
  let config: Config;
  try {
    config = loadConfig();
    refuseEmbeddedDatabase(config);
    refuseDatabaseUrlWithoutUser(config);
    await refuseUnusablePublicKey(config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // it quotes the value refused, which may hold braces
    log.fatal(literalMessage(error.message));
    Deno.exit(78);
  }
  await configureLogging(config.LOG_LEVEL);
  // a turn of the event loop, for a signal that came while the modules were evaluated to be heard
  await new Promise((resolve) => setTimeout(resolve, 0));
  const heard = stopSignalHeard();
  if (heard) {
    // nothing was opened yet: there is nothing to stop
    log.info("shutting down", { signal: heard });
    log.info("stopped");
    Deno.exit(0);
  }
  log.info("starting", { config: redactConfig(config) });
  // counted before the service opens anything of its own, and so leaving all that out
  const freeDescriptors = countFreeDescriptors(descriptorsToCount(config));
  const starting = startService(config, freeDescriptors === undefined ? {} : { freeDescriptors });
  const stop = async (signal: StopSignal) => {
    log.info("shutting down", { signal });
    // Every step forces itself at the deadline; this only guards against one that hangs anyway,
    // or a start that outlasts it.
    const backstop = setTimeout(() => {
      log.error("shutdown overran its deadline; exiting");
      Deno.exit(1);
    }, config.SHUTDOWN_TIMEOUT * 1000 + 2_000);
    // a signal during the start stops the service once it is up (a failed start exits below)
    const service = await starting.catch(() => new Promise<never>(() => {}));
    await service.close();
    clearTimeout(backstop);
    log.info("stopped");
    Deno.exit(0);
  };
  // a signal that came since the configuration was read is heard now
  onStopSignals(
    (signal) => void stop(signal),
    (signal) => log.error("second signal: exiting without finishing the shutdown", { signal }),
  );
  let service: RunningService;
  try {
    service = await starting;
  } catch (error) {
    // a setting only the start could find wrong (a NATS media bucket another deployment uses)
    if (error instanceof ConfigError) {
      log.fatal(literalMessage(error.message));
      Deno.exit(78);
    }
    log.fatal("could not start", { ...errorFields(error), ...databaseNamed(error, config) });
    Deno.exit(1);
  }
  log.info("listening", {
    port: service.port,
    grpc_port: service.grpcPort,
    instance_id: service.instanceId,
    pid: Deno.pid,
  });
}

/**
 * A JWT_PUBLIC_KEY the verifier cannot use (no SPKI PEM, a short RSA key) is a bad setting,
 * said before anything starts rather than once the database is migrated and NATS connected.
 */
async function refuseUnusablePublicKey(config: Config) {
  const key = jwtKey(config);
  if (key.kind !== "public_key") return;
  await createTokenVerifier({ key }).catch((error: Error) => {
    throw new ConfigError(`invalid configuration: JWT_PUBLIC_KEY: ${error.message}`);
  });
}

/**
 * Without DATABASE_URL the service would run the embedded development database, which needs
 * write access that `deno task start` (the container) does not grant: say so plainly.
 */
function refuseEmbeddedDatabase(config: Config) {
  if (config.DATABASE_URL) return;
  const write = Deno.permissions.querySync({ name: "write", path: config.DATA_DIR });
  if (write.state !== "granted") {
    throw new ConfigError(
      "invalid configuration: DATABASE_URL: required (the embedded database is for `deno task dev`)",
    );
  }
}

/**
 * Without a user in DATABASE_URL, postgres.js asks the system for the process's user name,
 * which `deno task start` may not ask (`--allow-sys=uid` only): it would connect as no user,
 * refused by the server in a line that names neither DATABASE_URL nor the cause.
 */
function refuseDatabaseUrlWithoutUser(config: Config) {
  if (!config.DATABASE_URL || new URL(config.DATABASE_URL).username) return;
  // what node:os userInfo() asks for; queried, as asking could prompt in a terminal
  const kinds = ["uid", "gid", "username"] as const;
  if (kinds.some((kind) => Deno.permissions.querySync({ name: "sys", kind }).state !== "granted")) {
    throw new ConfigError(
      "invalid configuration: DATABASE_URL: must name the user (postgres://user@host/database)",
    );
  }
}
