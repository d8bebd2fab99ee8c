// first: it listens for stop signals while the rest of the module graph is evaluated
import { onStopSignals, type StopSignal, stopSignalHeard } from "./stop_signals.ts";
import { type ChatService, createChatService } from "./chat/service.ts";
import { type Config, ConfigError, loadConfig, redactConfig } from "./config.ts";
import { reportLostConnectionRejections } from "./db/errors.ts";
import { WRITER_LOCK_TIMEOUT_MS } from "./db/locked_chats.ts";
import { createPostgresStore } from "./db/postgres_store.ts";
import { withStoreMetrics } from "./db/store_metrics.ts";
import { configureLogging, exitOnUncaughtErrors, logger } from "./observability/log.ts";
import { createMetrics } from "./observability/metrics.ts";
import type { Readiness } from "./observability/readiness.ts";
import {
  countFreeDescriptors,
  descriptorsToCount,
  reportSocketLimit,
  socketLimit,
} from "./open_files.ts";
import { ShutdownSequence } from "./shutdown.ts";
import { openDatabase } from "./start/database.ts";
import { openFanOut } from "./start/fan_out.ts";
import { logError, logLostConnection } from "./start/log_error.ts";
import { openMedia } from "./start/media.ts";
import { startPlanes } from "./start/planes.ts";
import { createServiceReadiness } from "./start/readiness.ts";
import { refuseUnusableSettings } from "./start/refusals.ts";
import { exitOnRefusedSetting, exitOnStartFailure } from "./start/start_failure.ts";
import { startTokenVerifier } from "./start/token_verifier.ts";

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

/**
 * The composition root: config -> sql -> store -> bus -> service -> planes. Each stage adds to
 * `shutdown` the steps that close what it opened as soon as it opened it, so a start that fails
 * closes what it had opened. `close` runs them in reverse, so nothing in flight loses what it
 * stands on: readiness says "shutting down"; the planes stop side by side (sockets get 1012, the
 * admin plane ends its calls); the sweep of unsent media stops; the media store closes; the feed
 * closes; the bus drains; the pools end; the embedded database stops.
 * Rejects with a ListenFailure for a port it cannot listen on, a ConfigError for a setting only
 * the start can find wrong.
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
    const metrics = createMetrics();
    const now = () => Date.now();
    // closes: the pools, then the embedded database
    const database = await openDatabase(config, shutdown, { instanceId, writerLockTimeoutMs });
    const { sql } = database;
    const store = withStoreMetrics(createPostgresStore(sql, database.writerSql), metrics);
    // closes: the feed, then the bus (drained)
    const fanOut = await openFanOut(config, shutdown, { sql, store, metrics, instanceId });
    const { bus, feed, subjects } = fanOut;
    // closes: the sweep of unsent media, then the media store
    const media = await openMedia(config, shutdown, { database, metrics, instanceId });
    const service = createChatService({
      store,
      events: feed,
      now,
      media: media.port,
      onError: logError,
    });
    const verifier = await startTokenVerifier(config);
    const readiness = createServiceReadiness(config, { database, bus, media, verifier });
    // closes: both planes, side by side
    const planes = await startPlanes(config, shutdown, {
      service,
      feed,
      verifier,
      readiness,
      metrics,
      now,
      sql,
      bus,
      subjects,
      instanceId,
      maxSockets: sockets.max,
    });
    // Pushed last so that it runs first: the load balancer and the gRPC health service hear
    // "shutting down" before anything stops.
    shutdown.add(() => readiness.close());
    return {
      port: planes.port,
      grpcPort: planes.grpcPort,
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

/**
 * `deno task start`: the service from its environment until SIGTERM or SIGINT. Exit codes: 0
 * once stopped, 78 for a setting refused, 1 for a start that failed or a shutdown that overran.
 */
async function runFromEnvironment(): Promise<void> {
  // configured before the configuration is read, so that a bad one is reported as a log line
  await configureLogging("info");
  // the lost connections' listener first: what it handles is no uncaught error
  reportLostConnectionRejections(logLostConnection);
  exitOnUncaughtErrors();
  const log = logger();
  let config: Config;
  try {
    config = loadConfig();
    await refuseUnusableSettings(config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    exitOnRefusedSetting(error);
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
  // a signal that came since the configuration was read is heard now
  onStopSignals(
    (signal) => void stopOnceStarted(starting, { signal, timeoutSeconds: config.SHUTDOWN_TIMEOUT }),
    (signal) => log.error("second signal: exiting without finishing the shutdown", { signal }),
  );
  let service: RunningService;
  try {
    service = await starting;
  } catch (error) {
    exitOnStartFailure(error, config);
  }
  log.info("listening", {
    port: service.port,
    grpc_port: service.grpcPort,
    instance_id: service.instanceId,
    pid: Deno.pid,
  });
}

/**
 * The shutdown on a stop signal: of the service once it is up, when the signal came during the
 * start (a start that fails exits in runFromEnvironment); exit 0 once stopped.
 */
async function stopOnceStarted(
  starting: Promise<RunningService>,
  options: { signal: StopSignal; timeoutSeconds: number },
): Promise<void> {
  const log = logger();
  log.info("shutting down", { signal: options.signal });
  // Every step forces itself at the deadline; this only guards against one that hangs anyway,
  // or a start that outlasts it.
  const backstop = setTimeout(() => {
    log.error("shutdown overran its deadline; exiting");
    Deno.exit(1);
  }, options.timeoutSeconds * 1000 + 2_000);
  // a start that fails never resolves here: runFromEnvironment reports it and exits
  const service = await starting.catch(() => new Promise<never>(() => {}));
  await service.close();
  clearTimeout(backstop);
  log.info("stopped");
  Deno.exit(0);
}

if (import.meta.main) await runFromEnvironment();
