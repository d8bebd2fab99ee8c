import assert from "node:assert/strict";
import { signDevToken } from "../auth/sign.ts";
import { GRPC_LISTENER_BACK, GRPC_LISTENER_STOPPED } from "../grpc/listener.ts";
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
import { within } from "./support/wait.ts";
import { TestSocket } from "./support/ws_client.ts";

const LISTENER_FAILED =
  "the HTTP listener failed; new connections are refused until it listens again";

/** Few enough descriptors for a test to use them all up with idle connections. */
const MAX_OPEN_FILES = 160;

/**
 * Opens up to `count` idle TCP connections to the service's HTTP port, stopping at the first
 * refused or reset: the listener is away, which is what the flood is for.
 */
async function floodConnections(service: ServiceProcess, count: number): Promise<Deno.TcpConn[]> {
  const connections: Deno.TcpConn[] = [];
  for (let opened = 0; opened < count; opened++) {
    try {
      connections.push(await Deno.connect({ hostname: "127.0.0.1", port: service.port }));
    } catch (error) {
      // refused, or reset when the listener closed with the connection in its backlog
      if (error instanceof Deno.errors.ConnectionRefused) break;
      if (error instanceof Deno.errors.ConnectionReset) break;
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
  const flood = await floodConnections(service, MAX_OPEN_FILES + 40);
  try {
    await service.waitForLog(
      (line) => line.message === LISTENER_FAILED,
      "the HTTP listener's failure",
    );
    // out of descriptors, the kernel still queues these; the gRPC listener's accept fails on them
    for (let attempt = 0; attempt < 5; attempt++) {
      flood.push(await Deno.connect({ hostname: "127.0.0.1", port: grpcPort }));
    }
  } finally {
    for (const connection of flood) connection.close();
  }
  // the listener's probe cannot tell while the process is out of descriptors, then finds it dead
  await service.waitForLog(
    (line) => line.message === GRPC_LISTENER_BACK,
    "the gRPC listener's recovery",
    15_000,
  );
  {
    using admin = await createAdminClient(`127.0.0.1:${grpcPort}`, { token: null });
    assert.equal(await admin.health(), "SERVING");
    // closed before the service goes: a GOAWAY at the shutdown can crash node:http2's client
    // under Deno (an nghttp2 assertion, find_stream_on_goaway_func)
  }
  const stopped = service.logs().filter((line) => line.message === GRPC_LISTENER_STOPPED);
  assert.equal(stopped.length, 1, "one line per episode");
  assert.equal(stopped[0]?.level, "WARN");
  service.kill("SIGTERM");
  assert.equal((await within(service.status, 10_000, "the service to exit")).code, 0);
});

Deno.test("sockets past WS_MAX_SOCKETS are answered 503 with Retry-After, so descriptors do not run out and the admin plane still answers", async () => {
  await using database = await freshDatabase();
  const cap = MAX_OPEN_FILES - 60;
  const env: Record<string, string> = {
    ...serviceEnvironment({ databaseUrl: database.url }),
    WS_MAX_SOCKETS: String(cap),
    WS_MAX_SOCKETS_PER_USER: "1000",
  };
  await using service = await startServiceProcess(env, { maxOpenFiles: MAX_OPEN_FILES });
  const chatId = await createChatIn(database.url, "alice", "acme");
  const token = await signDevToken(env.JWT_SECRET!, "alice");
  const url = `${service.wsUrl}/v1/ws/chat/${chatId}/`;

  const sockets: TestSocket[] = [];
  try {
    for (let opened = 0; opened < MAX_OPEN_FILES; opened++) {
      try {
        sockets.push(await TestSocket.open(url, { token }));
      } catch {
        break;
      }
    }
    assert.equal(sockets.length, cap);
    const refusal = await fetch(`${service.httpUrl}/v1/ws/chat/${chatId}/?token=${token}`, {
      headers: { upgrade: "websocket" },
    });
    await refusal.body?.cancel();
    assert.equal(refusal.status, 503);
    assert.equal(refusal.headers.get("retry-after"), "1");
    using admin = await createAdminClient(`127.0.0.1:${env.GRPC_PORT}`, { token: null });
    assert.equal(await admin.health(), "SERVING");

    await sockets.pop()![Symbol.asyncDispose]();
    sockets.push(
      await within(TestSocket.open(url, { token }), 5_000, "a socket once one closed"),
    );
  } finally {
    await Promise.all(sockets.map((socket) => socket[Symbol.asyncDispose]()));
  }
  const warnings = service.logs().filter((line) => line.message === SOCKET_CAP_REACHED);
  assert.equal(warnings.length, 1, "one line per episode, not per refused socket");
  assert.equal(warnings[0]?.ws_max_sockets, cap);
  assert.ok(!service.logs().some((line) => line.message === LISTENER_FAILED));
});
