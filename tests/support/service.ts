import { signDevToken } from "../../auth/sign.ts";
import { loadConfig } from "../../config.ts";
import { type RunningService, startService } from "../../main.ts";
import { type AdminClient, createAdminClient } from "./admin_client.ts";
import { freshDatabase } from "./database.ts";
import { TestSocket } from "./ws_client.ts";
import type { TcpProxy } from "./tcp_proxy.ts";
import { RECONNECT_BACKOFF_MAX_MS } from "../../db/pools.ts";

export const TEST_NATS_URL = Deno.env.get("TEST_NATS_URL") ?? "nats://127.0.0.1:4222";

/** One running instance as a test sees it. */
export interface TestInstance {
  service: RunningService;
  httpUrl: string;
  wsUrl: string;
  /** host:port of the gRPC admin plane; null unless the cluster was started with `grpc`. */
  grpcAddress: string | null;
}

/**
 * A cluster for one test: a fresh database, its own NATS subject prefix (so parallel tests
 * never hear each other) and one or more real service instances.
 */
export interface TestCluster extends AsyncDisposable {
  instances: TestInstance[];
  /** The first instance. */
  main: TestInstance;
  secret: string;
  databaseUrl: string;
  token(userId: string, ttlSeconds?: number): Promise<string>;
  /** Opens a socket on `/v1/ws/chat/{chatId}/` of an instance (default: the first). */
  openChat(userId: string, chatId: string, instance?: number): Promise<TestSocket>;
  openChats(userId: string, instance?: number): Promise<TestSocket>;
  startInstance(env?: Record<string, string>): Promise<TestInstance>;
  /** The GRPC_ADMIN_TOKEN of every instance (with `grpc`). */
  adminToken: string;
  /** A gRPC admin client of an instance (default: the first), closed with the cluster. */
  admin(instance?: number, options?: { token?: string | null }): Promise<AdminClient>;
}

export async function startCluster(
  options: {
    instances?: number;
    nats?: boolean;
    env?: Record<string, string>;
    /** Runs the gRPC admin plane on a free port of each instance. */
    grpc?: boolean;
    /** The message writer's lock_timeout (see startService). */
    writerLockTimeoutMs?: number;
  } = {},
): Promise<TestCluster> {
  const database = await freshDatabase();
  const secret = crypto.randomUUID() + crypto.randomUUID();
  const prefix = `t${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const instances: TestInstance[] = [];
  const sockets: TestSocket[] = [];
  const adminToken = `admin-${crypto.randomUUID()}`;
  const clients: AdminClient[] = [];

  async function startInstance(env: Record<string, string> = {}): Promise<TestInstance> {
    const config = loadConfig({
      PORT: "0",
      HOST: "127.0.0.1",
      GRPC_ENABLED: "0",
      DATABASE_URL: database.url,
      DATABASE_POOL_SIZE: "4",
      JWT_SECRET: secret,
      NATS_SUBJECT_PREFIX: prefix,
      ...(options.nats === false ? {} : { NATS_URL: TEST_NATS_URL }),
      ...(options.grpc ? { GRPC_ENABLED: "1", GRPC_PORT: "0", GRPC_ADMIN_TOKEN: adminToken } : {}),
      ...options.env,
      ...env,
    });
    const service = await startService(
      config,
      options.writerLockTimeoutMs === undefined
        ? {}
        : { writerLockTimeoutMs: options.writerLockTimeoutMs },
    );
    const instance = {
      service,
      httpUrl: `http://127.0.0.1:${service.port}`,
      wsUrl: `ws://127.0.0.1:${service.port}`,
      grpcAddress: service.grpcPort === null ? null : `127.0.0.1:${service.grpcPort}`,
    };
    instances.push(instance);
    return instance;
  }

  try {
    for (let index = 0; index < (options.instances ?? 1); index++) await startInstance();
  } catch (error) {
    for (const instance of instances) await instance.service.close();
    await database[Symbol.asyncDispose]();
    throw error;
  }

  const token = (userId: string, ttlSeconds?: number) =>
    signDevToken(secret, userId, ttlSeconds === undefined ? {} : { ttlSeconds });

  return {
    instances,
    get main() {
      return instances[0]!;
    },
    secret,
    databaseUrl: database.url,
    token,
    startInstance,
    adminToken,
    async admin(instance = 0, clientOptions = {}) {
      const address = instances[instance]!.grpcAddress;
      if (address === null) throw new Error("start the cluster with { grpc: true }");
      const client = await createAdminClient(address, {
        token: clientOptions.token === undefined ? adminToken : clientOptions.token,
      });
      clients.push(client);
      return client;
    },
    async openChat(userId, chatId, instance = 0) {
      const socket = await TestSocket.open(`${instances[instance]!.wsUrl}/v1/ws/chat/${chatId}/`, {
        token: await token(userId),
      });
      sockets.push(socket);
      return socket;
    },
    async openChats(userId, instance = 0) {
      const socket = await TestSocket.open(`${instances[instance]!.wsUrl}/v1/ws/chats/`, {
        token: await token(userId),
      });
      sockets.push(socket);
      return socket;
    },
    async [Symbol.asyncDispose]() {
      for (const client of clients) client.close();
      for (const socket of sockets) socket.close();
      await Promise.all(sockets.map((socket) => socket.closed));
      for (const instance of instances) await instance.service.close();
      await database[Symbol.asyncDispose]();
    },
  };
}

/**
 * Closes `cluster`, whose instances reach its database through `proxy`, with the proxy restored,
 * then cuts the proxy before the database is given back, once the pools have gone quiet through
 * it. postgres.js 3.4.9 leaves timers behind a pool's end: a connection that failed to connect
 * while the proxy was cut or stalled keeps a reconnect timer its pool's end does not cancel, and
 * the calls still queued when a pool ends are run after it, each on a connection opened again
 * after a reconnect backoff. Cut before that queue is done, those connections fail one after
 * another, each a backoff later, for longer than any fixed wait; quiet, nothing is left to
 * reconnect, and the cut closes the connections that are left.
 */
export async function closeThroughDatabaseProxy(
  cluster: TestCluster,
  proxy: TcpProxy,
): Promise<void> {
  proxy.restore();
  for (const instance of cluster.instances) await instance.service.close();
  await untilQuiet(proxy, RECONNECT_BACKOFF_MAX_MS + QUIET_MARGIN_MS);
  await proxy.cut();
  await cluster[Symbol.asyncDispose]();
}

/** Past the longest reconnect backoff: the time a connection takes to reach the proxy. */
const QUIET_MARGIN_MS = 250;

/**
 * Resolves once no connection has been taken or closed by `proxy`, and no byte passed up
 * through it, for `quietMs`; throws after 30 s of traffic.
 */
async function untilQuiet(proxy: TcpProxy, quietMs: number): Promise<void> {
  const activity = () => [proxy.accepted, proxy.openConnections, proxy.upstreamBytes].join();
  const deadline = performance.now() + 30_000;
  let seen = activity();
  let quietSince = performance.now();
  while (performance.now() - quietSince < quietMs) {
    if (performance.now() > deadline) throw new Error(`no quiet ${quietMs} ms through the proxy`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (activity() === seen) continue;
    seen = activity();
    quietSince = performance.now();
  }
}
