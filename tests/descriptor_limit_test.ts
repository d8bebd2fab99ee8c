import assert from "node:assert/strict";
import { signDevToken } from "../auth/sign.ts";
import { GRPC_LISTENER_BACK, GRPC_LISTENER_STOPPED } from "../grpc/listener.ts";
import { SOCKET_LIMIT_ABOVE_OPEN_FILES, SOCKET_LIMIT_DERIVED } from "../open_files.ts";
import { SOCKET_CAP_REACHED } from "../ws/socket_cap.ts";
import { createAdminClient } from "./support/admin_client.ts";
import { freshDatabase } from "./support/database.ts";
import { startNatsServer } from "./support/nats_server.ts";
import {
  createChatIn,
  serviceEnvironment,
  type ServiceProcess,
  startServiceProcess,
} from "./support/service_process.ts";
import { createCertificate } from "./support/tls_certificates.ts";
import { within } from "./support/wait.ts";
import { TestSocket } from "./support/ws_client.ts";

const LISTENER_FAILED =
  "the HTTP listener failed; new connections are refused until it listens again";
const TLS_FRONT_FAILED =
  "the gRPC TLS listener failed; new connections are refused until it listens again";
const TLS_FRONT_BACK = "the gRPC TLS listener accepts connections again";

/** Few enough descriptors for a test to use them all up with idle connections. */
const MAX_OPEN_FILES = 160;

/**
 * Opens up to `count` idle TCP connections to the service's HTTP port, stopping at the first
 * refused or reset: the listener is away, which is what the flood is for.
 */
/**
 * A connect refused, or reset (or not connected, as the kernel may also say of it) when the
 * listener closed with the connection in its backlog.
 */
function listenerClosed(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.NotConnected;
}

async function floodConnections(service: ServiceProcess, count: number): Promise<Deno.TcpConn[]> {
  const connections: Deno.TcpConn[] = [];
  for (let opened = 0; opened < count; opened++) {
    try {
      connections.push(await Deno.connect({ hostname: "127.0.0.1", port: service.port }));
    } catch (error) {
      if (listenerClosed(error)) break;
      throw error;
    }
  }
  return connections;
}

/**
 * CPU time (user and system, in clock ticks) the service process has used so far. Read by `cat`:
 * Deno lets only --allow-all read another process's /proc entries.
 */
async function cpuTicks(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`] }).output();
  const fields = new TextDecoder().decode(stdout).split(") ")[1]!.split(" ");
  // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name
  return Number(fields[11]) + Number(fields[12]);
}

/** Whether /healthz answers 200, asked again each 100 ms until it does or `ms` passed. */
async function healthzAnswers(service: ServiceProcess, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${service.httpUrl}/healthz`, {
        signal: AbortSignal.timeout(1_000),
      });
      await response.body?.cancel();
      if (response.status === 200) return true;
    } catch {
      // refused or unanswered while the listener is away
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

/**
 * Uses the service's descriptors up (its HTTP listener fails on the flood), then opens a few
 * connections to `port`, whose accept fails on them, and frees the descriptors once the service
 * logged `failure` (the HTTP listener's, by default).
 */
async function exhaustWhileConnecting(
  service: ServiceProcess,
  port: number,
  failure = LISTENER_FAILED,
): Promise<void> {
  const flood = await floodConnections(service, MAX_OPEN_FILES + 40);
  try {
    await service.waitForLog(
      (line) => line.message === LISTENER_FAILED,
      "the HTTP listener's failure",
    );
    // out of descriptors, the kernel still queues these; the process's accept fails on them
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        flood.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      } catch (error) {
        // a listener that closes its port on the failure refuses the rest
        if (listenerClosed(error)) break;
        throw error;
      }
    }
    await service.waitForLog((line) => line.message === failure, `"${failure}"`);
  } finally {
    for (const connection of flood) connection.close();
  }
}

/** The admin plane's health Check on a client of its own, closed before the service goes. */
async function adminHealth(
  address: string,
  options: { tls?: { ca: Uint8Array; serverName: string }; waitMs?: number } = {},
): Promise<string> {
  // a GOAWAY at the service's shutdown can crash node:http2's client under Deno (an nghttp2
  // assertion, find_stream_on_goaway_func): the test closes its client first
  using admin = await createAdminClient(address, {
    token: null,
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  });
  return await admin.health(
    "",
    options.waitMs === undefined ? {} : { deadlineMs: options.waitMs, waitForReady: true },
  );
}

Deno.test("out of file descriptors, the service keeps its sockets, refuses new connections without spinning, logs it once and listens again once descriptors are free", async () => {
  await using database = await freshDatabase();
  await using nats = await startNatsServer();
  const env = serviceEnvironment({ databaseUrl: database.url, natsUrl: nats.url });
  await using service = await startServiceProcess(env, { maxOpenFiles: MAX_OPEN_FILES });
  const pid = service.logs().find((line) => line.message === "listening")?.pid;
  const chatId = await createChatIn(database.url, "alice", "acme");
  await using alice = await TestSocket.open(`${service.wsUrl}/v1/ws/chat/${chatId}/`, {
    token: await signDevToken(env.JWT_SECRET!, "alice"),
  });
  await alice.nextOfType("unread_messages");

  const flood = await floodConnections(service, MAX_OPEN_FILES + 40);
  try {
    await service.waitForLog(
      (line) =>
        line.message ===
          "the HTTP listener failed; new connections are refused until it listens again",
      "the listener's failure",
    );
    const ticksBefore = await cpuTicks(pid);
    const ack = await alice.request({
      action: "send_message",
      receiver_id: "acme",
      media_type: "text",
      content: "still here",
    });
    assert.equal(ack.type, "ack");
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    // an accept loop that spun on the error would use both seconds and more
    const ticks = await cpuTicks(pid) - ticksBefore;
    assert.ok(ticks < 50, `the exhausted service used ${ticks} ticks of CPU in 2 s`);
  } finally {
    for (const connection of flood) connection.close();
  }

  assert.ok(await healthzAnswers(service, 10_000), "/healthz did not answer again");
  await service.waitForLog(
    (line) => line.message === "the HTTP listener accepts connections again",
    "the listener's recovery",
  );
  const failures = service.logs().filter((line) => line.message === LISTENER_FAILED);
  assert.equal(failures.length, 1, "one line per episode, not per refused connection");
  assert.equal(failures[0]?.level, "WARN");
  assert.match(failures[0]?.error?.message ?? "", /Too many open files/);
  await within(
    alice.request({
      action: "send_message",
      receiver_id: "acme",
      media_type: "text",
      content: "!",
    }),
    5_000,
    "a send after the episode",
  );
  await alice[Symbol.asyncDispose]();
  // the listener that failed is shut down with the rest
  service.kill("SIGTERM");
  assert.equal((await within(service.status, 10_000, "the service to exit")).code, 0);
});

Deno.test("out of file descriptors, the gRPC admin plane's listener, stopped by a failed accept, listens again once descriptors are free", async () => {
  await using database = await freshDatabase();
  const env = serviceEnvironment({ databaseUrl: database.url });
  await using service = await startServiceProcess(env, { maxOpenFiles: MAX_OPEN_FILES });
  const grpcPort = Number(env.GRPC_PORT);
  await exhaustWhileConnecting(service, grpcPort);
  // the listener's probe cannot tell while the process is out of descriptors, then finds it dead
  await service.waitForLog(
    (line) => line.message === GRPC_LISTENER_BACK,
    "the gRPC listener's recovery",
    15_000,
  );
  assert.equal(await adminHealth(`127.0.0.1:${grpcPort}`), "SERVING");
  const stopped = service.logs().filter((line) => line.message === GRPC_LISTENER_STOPPED);
  assert.equal(stopped.length, 1, "one line per episode");
  assert.equal(stopped[0]?.level, "WARN");
  service.kill("SIGTERM");
  assert.equal((await within(service.status, 10_000, "the service to exit")).code, 0);
});

Deno.test("out of file descriptors, the gRPC TLS front, stopped by a failed accept, listens again and answers a health check over TLS once descriptors are free", async () => {
  await using database = await freshDatabase();
  const { cert, key } = await createCertificate();
  const env: Record<string, string> = {
    ...serviceEnvironment({ databaseUrl: database.url }),
    GRPC_TLS_CERT: cert,
    GRPC_TLS_KEY: key,
  };
  await using service = await startServiceProcess(env, { maxOpenFiles: MAX_OPEN_FILES });
  const grpcPort = Number(env.GRPC_PORT);
  await exhaustWhileConnecting(service, grpcPort, TLS_FRONT_FAILED);
  const health = await adminHealth(`127.0.0.1:${grpcPort}`, {
    // node's TLS takes no IP address as the server name
    tls: { ca: new TextEncoder().encode(cert), serverName: "localhost" },
    // through refused connections until the port is opened again
    waitMs: 8_000,
  });
  assert.equal(health, "SERVING");
  await service.waitForLog(
    (line) => line.message === TLS_FRONT_BACK,
    "the gRPC TLS front's recovery",
  );
  const failures = service.logs().filter((line) => line.message === TLS_FRONT_FAILED);
  assert.equal(failures.length, 1, "one line per episode, not per refused connection");
  assert.equal(failures[0]?.level, "WARN");
  assert.match(failures[0]?.error?.message ?? "", /Too many open files/);
  service.kill("SIGTERM");
  assert.equal((await within(service.status, 10_000, "the service to exit")).code, 0);
});

/**
 * Opens alice's sockets to a chat of hers until one fails to open (MAX_OPEN_FILES at most), checks
 * that one more upgrade is answered 503 with Retry-After and that the admin plane answers, runs
 * `whileFull`, and closes them all. Returns how many opened.
 */
async function fillSockets(
  service: ServiceProcess,
  env: Record<string, string>,
  whileFull: (sockets: TestSocket[], open: () => Promise<TestSocket>) => Promise<void> = () =>
    Promise.resolve(),
): Promise<number> {
  const chatId = await createChatIn(env.DATABASE_URL!, "alice", "acme");
  const token = await signDevToken(env.JWT_SECRET!, "alice");
  const open = () => TestSocket.open(`${service.wsUrl}/v1/ws/chat/${chatId}/`, { token });
  const sockets: TestSocket[] = [];
  try {
    for (let opened = 0; opened < MAX_OPEN_FILES; opened++) {
      try {
        sockets.push(await open());
      } catch {
        break;
      }
    }
    const opened = sockets.length;
    const refusal = await fetch(`${service.httpUrl}/v1/ws/chat/${chatId}/?token=${token}`, {
      headers: { upgrade: "websocket" },
    });
    await refusal.body?.cancel();
    assert.equal(refusal.status, 503);
    assert.equal(refusal.headers.get("retry-after"), "1");
    using admin = await createAdminClient(`127.0.0.1:${env.GRPC_PORT}`, { token: null });
    assert.equal(await admin.health(), "SERVING");
    await whileFull(sockets, open);
    return opened;
  } finally {
    await Promise.all(sockets.map((socket) => socket[Symbol.asyncDispose]()));
  }
}

Deno.test("sockets past WS_MAX_SOCKETS are answered 503 with Retry-After, so descriptors do not run out and the admin plane still answers", async () => {
  await using database = await freshDatabase();
  const cap = MAX_OPEN_FILES - 60;
  const env: Record<string, string> = {
    ...serviceEnvironment({ databaseUrl: database.url }),
    WS_MAX_SOCKETS: String(cap),
    WS_MAX_SOCKETS_PER_USER: "1000",
  };
  await using service = await startServiceProcess(env, { maxOpenFiles: MAX_OPEN_FILES });
  const opened = await fillSockets(service, env, async (sockets, open) => {
    await sockets.pop()![Symbol.asyncDispose]();
    sockets.push(await within(open(), 5_000, "a socket once one closed"));
  });
  assert.equal(opened, cap);
  const warnings = service.logs().filter((line) => line.message === SOCKET_CAP_REACHED);
  assert.equal(warnings.length, 1, "one line per episode, not per refused socket");
  assert.equal(warnings[0]?.ws_max_sockets, cap);
  assert.ok(!service.logs().some((line) => line.message === LISTENER_FAILED));
});

Deno.test("WS_MAX_SOCKETS set above what the open-file limit allows is warned of at the start, naming both figures", async () => {
  await using database = await freshDatabase();
  const env: Record<string, string> = {
    ...serviceEnvironment({ databaseUrl: database.url }),
    WS_MAX_SOCKETS: "50000",
  };
  await using service = await startServiceProcess(env, { maxOpenFiles: MAX_OPEN_FILES });
  const warning = await service.waitForLog(
    (line) => line.message === SOCKET_LIMIT_ABOVE_OPEN_FILES,
    "the warning",
  );
  assert.equal(warning.level, "WARN");
  assert.equal(warning.ws_max_sockets, 50_000);
  assert.ok(
    warning.allowed_by_open_file_limit < MAX_OPEN_FILES,
    `allowed ${warning.allowed_by_open_file_limit} under a limit of ${MAX_OPEN_FILES}`,
  );
});

Deno.test("without WS_MAX_SOCKETS, sockets past what the open-file limit leaves room for are answered 503 with Retry-After before descriptors run out", async () => {
  await using database = await freshDatabase();
  const env: Record<string, string> = {
    ...serviceEnvironment({ databaseUrl: database.url }),
    WS_MAX_SOCKETS_PER_USER: "1000",
  };
  await using service = await startServiceProcess(env, { maxOpenFiles: MAX_OPEN_FILES });
  const opened = await fillSockets(service, env);
  const derived = service.logs().find((line) => line.message === SOCKET_LIMIT_DERIVED);
  assert.equal(derived?.ws_max_sockets, opened);
  assert.ok(!service.logs().some((line) => line.message === LISTENER_FAILED));
  assert.ok(!service.logs().some((line) => line.message === SOCKET_LIMIT_ABOVE_OPEN_FILES));
});
