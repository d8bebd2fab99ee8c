import postgres from "postgres";
import { createTokenVerifier, type JwtKeyConfig } from "./auth/verifier.ts";
import type { Bus } from "./bus/bus.ts";
import { createMemoryBus } from "./bus/memory_bus.ts";
import { createNatsBus } from "./bus/nats_bus.ts";
import { createSubjects } from "./bus/subjects.ts";
import { createChatFeed } from "./chat/feed.ts";
import { type ChatService, createChatService } from "./chat/service.ts";
import { type Config, ConfigError, loadConfig, redactConfig } from "./config.ts";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "./db/embedded.ts";
import { migrate } from "./db/migrate.ts";
import { createPostgresStore } from "./db/postgres_store.ts";
import { createHttpHandler } from "./ws/server.ts";

export interface RunningService {
  /** The HTTP/WebSocket port actually bound. */
  port: number;
  instanceId: string;
  /** The domain service, for in-process tools (development seed, tests). */
  chat: ChatService;
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

function logError(error: unknown, context: string) {
  const detail = error instanceof Error
    ? { error: error.name, message: error.message, cause: String(error.cause ?? "") }
    : { error: String(error) };
  console.error(
    JSON.stringify({ level: "error", at: new Date().toISOString(), context, ...detail }),
  );
}

/**
 * The composition root: config -> sql -> store -> bus -> service -> planes. The order of
 * `close` is the reverse, so nothing in flight loses what it stands on.
 */
export async function startService(config: Config): Promise<RunningService> {
  const instanceId = crypto.randomUUID();
  const cleanup: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const step of cleanup.splice(0).reverse()) {
      await step().catch((error) => logError(error, "shutdown"));
    }
  };
  try {
    let embedded: EmbeddedPostgres | undefined;
    if (!config.DATABASE_URL) {
      embedded = await startEmbeddedPostgres(config.DATA_DIR);
      cleanup.push(() => embedded!.close());
    }
    const sql = postgres(config.DATABASE_URL ?? embedded!.url, {
      max: embedded ? 4 : config.DATABASE_POOL_SIZE,
      connect_timeout: 5,
      idle_timeout: 60,
      onnotice: () => {},
      connection: { application_name: `chat-${instanceId.slice(0, 8)}` },
    });
    cleanup.push(() => sql.end({ timeout: config.SHUTDOWN_TIMEOUT_SECONDS }));
    await migrate(sql);
    const store = createPostgresStore(sql);

    let bus: Bus;
    if (config.NATS_URL) {
      bus = await createNatsBus({
        servers: config.NATS_URL,
        name: `chat-${instanceId.slice(0, 8)}`,
        onError: (error) => logError(error, "nats"),
      });
    } else {
      bus = createMemoryBus();
    }
    cleanup.push(() => bus.close());
    const subjects = createSubjects(config.NATS_SUBJECT_PREFIX);
    const now = () => Date.now();
    const service = createChatService({ store, bus, subjects, now });
    const feed = createChatFeed({ bus, store, subjects }, { onError: logError });
    const verifier = await createTokenVerifier({
      key: jwtKey(config),
      ...(config.JWT_ISSUER ? { issuer: config.JWT_ISSUER } : {}),
      ...(config.JWT_AUDIENCE ? { audience: config.JWT_AUDIENCE } : {}),
      ...(config.JWT_USER_CLAIM ? { userClaim: config.JWT_USER_CLAIM } : {}),
    });

    const readiness = async () => {
      const signal = AbortSignal.timeout(2_000);
      const [database, nats] = await Promise.all([store.check(signal), bus.check(signal)]);
      const checks: Record<string, boolean> = { database };
      if (config.NATS_URL) checks.nats = nats;
      return { ready: Object.values(checks).every(Boolean), checks };
    };
    const http = createHttpHandler(
      { service, feed, verifier, readiness, now, onError: logError },
      {
        maxFrameBytes: config.MAX_FRAME_BYTES,
        idleTimeoutSeconds: config.WS_IDLE_TIMEOUT_SECONDS,
        allowedOrigins: config.ALLOWED_ORIGINS,
      },
    );
    const server = Deno.serve({
      hostname: config.HOST,
      port: config.PORT,
      onListen: () => {},
    }, http.fetch);
    cleanup.push(async () => {
      http.closeAll();
      await server.shutdown();
    });

    return {
      port: server.addr.port,
      instanceId,
      chat: service,
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

if (import.meta.main) {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    Deno.exit(78);
  }
  console.log(JSON.stringify({ level: "info", message: "starting", config: redactConfig(config) }));
  const service = await startService(config);
  console.log(JSON.stringify({ level: "info", message: "listening", port: service.port }));
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await service.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}
