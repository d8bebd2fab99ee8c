import assert from "node:assert/strict";
import { signDevToken } from "../auth/sign.ts";
import { createAdminClient } from "./support/admin_client.ts";
import { freshDatabase } from "./support/database.ts";
import { dockerHealthcheck } from "./support/dockerfile.ts";
import { natsBucket } from "./support/media.ts";
import { readyz } from "./support/readyz.ts";
import { TEST_NATS_URL } from "./support/service.ts";
import { createNatsMediaStore } from "../media/nats_media_store.ts";
import { startNatsServer } from "./support/nats_server.ts";
import {
  createChatIn,
  metricsOf,
  runServiceProcess,
  sample,
  serviceEnvironment,
  serviceLines,
  startServiceProcess,
} from "./support/service_process.ts";
import { REPO_ROOT } from "./support/service_process.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import { createCertificate } from "./support/tls_certificates.ts";
import { within } from "./support/wait.ts";
import { TestSocket } from "./support/ws_client.ts";

/**
 * Runs the Dockerfile's HEALTHCHECK command in the environment the container gives it (the
 * service's HOST and PORT); its exit code.
 */
async function runHealthcheck(port: number, host = "127.0.0.1"): Promise<number> {
  const [command, ...args] = await dockerHealthcheck();
  const { code } = await new Deno.Command(command!, {
    args,
    cwd: REPO_ROOT,
    env: { HOST: host, PORT: String(port) },
    stdout: "null",
    stderr: "null",
  }).output();
  return code;
}

Deno.test("deno task start, with the container's permissions, serves health, readiness and metrics, and the HEALTHCHECK follows it", async () => {
  await using database = await freshDatabase();
  await using nats = await startNatsServer();
  const env = serviceEnvironment({ databaseUrl: database.url, natsUrl: nats.url });
  await using service = await startServiceProcess(env);

  const health = await fetch(`${service.httpUrl}/healthz`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
  assert.deepEqual(await readyz(service.httpUrl), {
    status: 200,
    body: { ready: true, checks: { database: true, nats: true } },
  });
  const metrics = await fetch(`${service.httpUrl}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain/);
  const text = await metrics.text();
  assert.match(text, /^chat_process_memory_bytes\{kind="rss"\} [1-9]/m);
  assert.match(text, /^chat_event_loop_lag_seconds \d/m);

  const listening = service.logs().find((line) => line.message === "listening");
  // the ports bound, which may have been chosen by the system (0)
  assert.deepEqual([listening?.port, listening?.grpc_port], [service.port, Number(env.GRPC_PORT)]);
  const starting = service.logs().find((line) => line.message === "starting");
  assert.equal(starting?.config.JWT_SECRET, "[redacted]");
  assert.equal(starting?.config.GRPC_ADMIN_TOKEN, "[redacted]");
  for (const secret of [env.JWT_SECRET!, env.GRPC_ADMIN_TOKEN!]) {
    assert.ok(!service.lines.some((line) => line.includes(secret)), "a secret was logged");
  }

  assert.equal(await runHealthcheck(service.port), 0);
  service.kill("SIGTERM");
  assert.equal((await within(service.status, 10_000, "the service to exit")).code, 0);
  assert.equal(await runHealthcheck(service.port), 1);
});

Deno.test("the HEALTHCHECK asks the address HOST names, or loopback when HOST is every address", async () => {
  await using database = await freshDatabase();
  const env = { ...serviceEnvironment({ databaseUrl: database.url }), GRPC_ENABLED: "0" };
  // an address of the host that is not 127.0.0.1 (all of 127/8 is loopback on Linux)
  await using one = await startServiceProcess({ ...env, HOST: "127.0.0.2" });
  assert.equal(await runHealthcheck(one.port, "127.0.0.2"), 0, "HOST=127.0.0.2");
  // the image's own setting
  await using every = await startServiceProcess({ ...env, HOST: "0.0.0.0" });
  assert.equal(await runHealthcheck(every.port, "0.0.0.0"), 0, "HOST=0.0.0.0");
});

Deno.test("/readyz and gRPC health answer not ready naming NATS while it is stopped, and ready once the service reconnected", async () => {
  await using database = await freshDatabase();
  await using nats = await startNatsServer();
  const env = serviceEnvironment({ databaseUrl: database.url, natsUrl: nats.url });
  await using service = await startServiceProcess(env);
  using admin = await createAdminClient(`127.0.0.1:${env.GRPC_PORT}`, { token: null });
  assert.equal((await readyz(service.httpUrl)).status, 200);
  assert.equal(await admin.health(), "SERVING");

  await nats.stop();
  assert.deepEqual(await readyz(service.httpUrl), {
    status: 503,
    body: { ready: false, checks: { database: true, nats: false }, reason: "not answering: nats" },
  });
  // the gRPC health service follows the same readiness, told of each change
  assert.equal(await admin.health(), "NOT_SERVING");
  assert.equal(await admin.health("chat.admin.v1.ChatAdmin"), "NOT_SERVING");

  await nats.start();
  await service.waitForLog(
    (line) => line.message === "reconnected to NATS",
    "the reconnect",
    15_000,
  );
  assert.equal((await readyz(service.httpUrl)).status, 200);
  assert.equal(await admin.health(), "SERVING");
  assert.equal(sample(await metricsOf(service), "chat_nats_reconnects_total"), 1);
});

Deno.test("/readyz answers 503 naming the database while its connections are cut, and 200 once restored", async () => {
  await using database = await freshDatabase();
  await using proxy = startTcpProxy(database.url);
  await using service = await startServiceProcess(
    serviceEnvironment({ databaseUrl: proxy.url }),
  );
  assert.deepEqual(await readyz(service.httpUrl), {
    status: 200,
    body: { ready: true, checks: { database: true } },
  });

  await proxy.cut();
  assert.deepEqual(await readyz(service.httpUrl), {
    status: 503,
    body: { ready: false, checks: { database: false }, reason: "not answering: database" },
  });
  const health = await fetch(`${service.httpUrl}/healthz`);
  assert.equal(health.status, 200, "a database that is away does not make the process unhealthy");
  await health.body?.cancel();

  proxy.restore();
  assert.equal((await readyz(service.httpUrl)).status, 200);
});

Deno.test("metrics move as messages are sent, and socket log lines carry a connection id but no token or content", async () => {
  await using database = await freshDatabase();
  await using nats = await startNatsServer();
  const env = serviceEnvironment({ databaseUrl: database.url, natsUrl: nats.url });
  await using service = await startServiceProcess(env);
  const chatId = await createChatIn(database.url, "alice", "acme");
  const aliceToken = await signDevToken(env.JWT_SECRET!, "alice");
  const acmeToken = await signDevToken(env.JWT_SECRET!, "acme");
  const content = "the content that must never reach a log";

  {
    await using alice = await TestSocket.open(`${service.wsUrl}/v1/ws/chat/${chatId}/`, {
      token: aliceToken,
    });
    await using acme = await TestSocket.open(`${service.wsUrl}/v1/ws/chat/${chatId}/`, {
      token: acmeToken,
    });
    await alice.nextOfType("unread_messages");
    await acme.nextOfType("unread_messages");
    const before = await metricsOf(service);
    assert.equal(sample(before, 'chat_ws_open_sockets{endpoint="chat"}'), 2);
    assert.equal(sample(before, 'chat_messages_stored_total{media_type="text"}'), 0);

    const ack = await alice.request({
      action: "send_message",
      receiver_id: "acme",
      media_type: "text",
      content,
    });
    assert.equal(ack.type, "ack");
    await acme.nextOfType("chat_message");
    await alice.nextOfType("chat_message");
    alice.send("{not json");
    await alice.next((frame) => frame.code === "invalid_json", "the invalid_json error");

    const after = await metricsOf(service);
    assert.equal(sample(after, 'chat_messages_stored_total{media_type="text"}'), 1);
    assert.equal(sample(after, 'chat_events_delivered_total{type="chat_message"}'), 2);
    assert.equal(sample(after, 'chat_ws_actions_total{action="send_message",outcome="ok"}'), 1);
    assert.equal(sample(after, 'chat_ws_errors_total{code="invalid_json"}'), 1);
    assert.ok(sample(after, "chat_fanout_latency_seconds_count") >= 2);
    assert.ok(
      sample(
        after,
        'chat_db_query_duration_seconds_count{operation="insertMessage",outcome="ok"}',
      ) >=
        1,
    );
  }
  await service.waitForLog(
    () => service.logs().filter((line) => line.message === "socket closed").length === 2,
    "both sockets to close",
  );
  assert.equal(sample(await metricsOf(service), 'chat_ws_open_sockets{endpoint="chat"}'), 0);

  const socketLines = service.logs().filter((line) => line.logger === "chat.ws");
  assert.ok(socketLines.length >= 4, "opened and closed, for each socket");
  for (const line of socketLines) assert.ok(line.connection_id, JSON.stringify(line));
  for (const text of [aliceToken, acmeToken, content]) {
    assert.ok(!service.lines.some((line) => line.includes(text)), `logged: ${text}`);
  }
});

Deno.test("a wrong or missing setting stops deno task start with one line naming the variable", async () => {
  const env = serviceEnvironment({ databaseUrl: "postgres://postgres@127.0.0.1:1/unused" });
  const { DATABASE_URL: _, ...withoutDatabase } = env;
  const { JWT_SECRET: __, ...withoutKey } = env;
  const cases: Array<[Record<string, string>, string]> = [
    [{ ...env, JWT_SECRET: "too short" }, "JWT_SECRET"],
    [withoutKey, "JWT_SECRET"],
    [{ ...env, DATABASE_URL: "mysql://db/chat" }, "DATABASE_URL"],
    [withoutDatabase, "DATABASE_URL"],
    // postgres.js would ask the system for the user, which the start may not: it sent none
    [{ ...env, DATABASE_URL: "postgres://127.0.0.1:1/unused" }, "DATABASE_URL"],
    [{ ...env, LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ ...env, GRPC_PORT: "eighty" }, "GRPC_PORT"],
    // blanks are no number: read as 0, they bound a port the system chose
    [{ ...env, PORT: " " }, "PORT"],
    [{ ...env, GRPC_PORT: " " }, "GRPC_PORT"],
    // else found only when binding, after the migrations, in a line that does not name HOST
    [{ ...env, HOST: "not a host" }, "HOST"],
    // the HTTP listener takes the brackets, the gRPC one does not
    [{ ...env, HOST: "[::1]" }, "HOST"],
    // else found only at the connect, after the migrations, and said as "could not start"
    [{ ...env, NATS_URL: "nats://127.0.0.1:99999" }, "NATS_URL"],
    // a key the verifier cannot use, found before the database is asked (it would refuse: port 1)
    [{
      ...withoutKey,
      JWT_PUBLIC_KEY: "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----",
    }, "JWT_PUBLIC_KEY"],
  ];
  const runs = await Promise.all(cases.map(([caseEnv]) => runServiceProcess(caseEnv)));
  runs.forEach(({ code, lines }, index) => {
    const variable = cases[index]![1];
    const printed = serviceLines(lines);
    assert.equal(code, 78, `${variable}: exit code\n${lines.join("\n")}`);
    assert.equal(printed.length, 1, `${variable}: one line\n${printed.join("\n")}`);
    const line = JSON.parse(printed[0]!);
    assert.equal(line.level, "FATAL");
    assert.match(line.message, new RegExp(`^invalid configuration: ${variable}: `));
  });
});

Deno.test("a TLS file deno task start may not read stops it with one line naming the variable, before the database", async () => {
  // the start may read under /run/secrets only; the database is never reached (port 1)
  const env = serviceEnvironment({ databaseUrl: "postgres://postgres@127.0.0.1:1/unused" });
  const dir = await Deno.makeTempDir();
  try {
    const cert = `${dir}/cert.pem`;
    await Deno.writeTextFile(cert, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");
    const { code, lines } = await runServiceProcess({
      ...env,
      GRPC_TLS_CERT: cert,
      GRPC_TLS_KEY: "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
    });
    const printed = serviceLines(lines);
    assert.equal(code, 78, lines.join("\n"));
    assert.equal(printed.length, 1, printed.join("\n"));
    assert.equal(
      JSON.parse(printed[0]!).message,
      `invalid configuration: GRPC_TLS_CERT: cannot read ${cert}: \`deno task start\` reads files under /run/secrets only`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a GRPC_TLS_KEY that is not GRPC_TLS_CERT's stops deno task start with one line naming it, before the database", async () => {
  // the database is never reached (port 1): without the check the start failed there, and with
  // a database it failed only when the admin plane started, after the migrations
  const env = serviceEnvironment({ databaseUrl: "postgres://postgres@127.0.0.1:1/unused" });
  const [served, other] = await Promise.all([createCertificate(), createCertificate()]);
  const { code, lines } = await runServiceProcess({
    ...env,
    GRPC_TLS_CERT: served.cert,
    GRPC_TLS_KEY: other.key,
  });
  const printed = serviceLines(lines);
  assert.equal(code, 78, lines.join("\n"));
  assert.equal(printed.length, 1, printed.join("\n"));
  assert.equal(
    JSON.parse(printed[0]!).message,
    "invalid configuration: GRPC_TLS_KEY: is not the key of GRPC_TLS_CERT's first certificate",
  );
});

Deno.test("a NATS_URL with credentials but no scheme connects, and keeps its password out of every line", async () => {
  await using database = await freshDatabase();
  const password = `pw-${crypto.randomUUID()}`;
  await using nats = await startNatsServer(["--user", "chat", "--pass", password]);
  // `user:password@host:port`, without `nats://`: NATS takes `host:port`, so operators write it
  const natsUrl = nats.url.replace("nats://", `chat:${password}@`);
  const printed = await (async () => {
    // listening: it reached the NATS that wants the password
    await using service = await startServiceProcess(
      serviceEnvironment({ databaseUrl: database.url, natsUrl }),
    );
    return serviceLines(service.lines);
  })();
  assert.ok(printed.some((line) => line.includes('"starting"')), printed.join("\n"));
  const leaking = printed.filter((line) => line.includes(password));
  assert.deepEqual(leaking, [], "the NATS password was logged");
});

Deno.test("a refused setting is quoted in the log line as it was written, braces and all", async () => {
  const env = serviceEnvironment({ databaseUrl: "postgres://postgres@127.0.0.1:1/unused" });
  // a placeholder the deployment left unexpanded: what the operator most needs to see
  const { code, lines } = await runServiceProcess({ ...env, ALLOWED_ORIGINS: "${ORIGIN}" });
  assert.equal(code, 78);
  const printed = serviceLines(lines);
  assert.equal(printed.length, 1, printed.join("\n"));
  assert.equal(
    JSON.parse(printed[0]!).message,
    'invalid configuration: ALLOWED_ORIGINS: "${ORIGIN}" is no origin (scheme://host[:port], as browsers send)',
  );
});

/** The FATAL log records among the service's lines (each a JSON record). */
function fatalRecords(printed: readonly string[]) {
  return printed.map((line) => JSON.parse(line)).filter((line) => line.level === "FATAL");
}

Deno.test("an admin port in use stops deno task start with its JSON line alone, naming the address", async () => {
  await using database = await freshDatabase();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const env = serviceEnvironment({ databaseUrl: database.url });
  const { code, lines } = await runServiceProcess({ ...env, GRPC_PORT: String(taken.addr.port) });
  assert.equal(code, 1, lines.join("\n"));
  // grpc-js writes its own errors to standard error, as text a log collector cannot read
  const printed = serviceLines(lines);
  const notJson = printed.filter((line) => !line.startsWith("{"));
  assert.deepEqual(notJson, [], "lines that are no log record");
  const fatal = fatalRecords(printed);
  assert.equal(fatal.length, 1, printed.join("\n"));
  assert.match(fatal[0].error.message, new RegExp(`127\\.0\\.0\\.1:${taken.addr.port}`));
  // the setting to change
  assert.match(fatal[0].error.message, /^GRPC_PORT: /);
});

Deno.test("a NATS media bucket another deployment uses stops deno task start with one line naming MEDIA_NATS_BUCKET, exit 78", async () => {
  await using database = await freshDatabase();
  await using bucket = natsBucket();
  // the bucket of a deployment of another NATS_SUBJECT_PREFIX on the same NATS
  const other = await createNatsMediaStore({
    servers: TEST_NATS_URL,
    bucket: bucket.name,
    owner: "another_deployment",
  });
  await other.close();
  const env = serviceEnvironment({ databaseUrl: database.url, natsUrl: TEST_NATS_URL });
  const { code, lines } = await runServiceProcess({
    ...env,
    MEDIA_BACKEND: "nats",
    MEDIA_NATS_BUCKET: bucket.name,
  });
  assert.equal(code, 78, lines.join("\n"));
  const fatal = fatalRecords(serviceLines(lines));
  assert.equal(fatal.length, 1, lines.join("\n"));
  assert.match(fatal[0].message, /^invalid configuration: MEDIA_NATS_BUCKET: the bucket /);
  assert.match(fatal[0].message, /another_deployment/);
});

Deno.test("an HTTP port in use stops deno task start with one line naming PORT and the address, exit 1", async () => {
  await using database = await freshDatabase();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const env = serviceEnvironment({ databaseUrl: database.url });
  const { code, lines } = await runServiceProcess({ ...env, PORT: String(taken.addr.port) });
  assert.equal(code, 1, lines.join("\n"));
  const printed = serviceLines(lines);
  const fatal = fatalRecords(printed);
  assert.equal(fatal.length, 1, printed.join("\n"));
  assert.equal(fatal[0].message, "could not start");
  assert.equal(
    fatal[0].error.message,
    `PORT: cannot listen on 127.0.0.1:${taken.addr.port}: the address is in use`,
  );
});

Deno.test("a HOST name that does not resolve stops deno task start with one line naming HOST, exit 1", async () => {
  await using database = await freshDatabase();
  const env = serviceEnvironment({ databaseUrl: database.url });
  // .invalid never resolves (RFC 2606): a typo, or a name the DNS does not have (yet)
  const { code, lines } = await runServiceProcess({ ...env, HOST: "chat-host.invalid" });
  assert.equal(code, 1, lines.join("\n"));
  const printed = serviceLines(lines);
  const fatal = fatalRecords(printed);
  assert.equal(fatal.length, 1, printed.join("\n"));
  assert.equal(fatal[0].message, "could not start");
  assert.match(
    fatal[0].error.message,
    /^HOST: cannot listen on chat-host\.invalid:\d+: the name could not be resolved/,
  );
});

Deno.test("a database that cannot be reached, or will not speak TLS when sslmode asks for it, stops deno task start with one line naming its host", async () => {
  await using database = await freshDatabase();
  const url = new URL(database.url);
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = closed.addr.port;
  closed.close();
  const unreachable = Object.assign(new URL(url), { port: String(closedPort) });
  // the test PostgreSQL has no TLS: the TLS handshake's failure names no address of its own
  const noTls = new URL(url);
  noTls.searchParams.set("sslmode", "require");
  for (
    const [what, databaseUrl, address] of [
      ["refused", unreachable, `127.0.0.1:${closedPort}`],
      ["no TLS", noTls, `${url.hostname}:${url.port}`],
    ] as const
  ) {
    const env = serviceEnvironment({ databaseUrl: databaseUrl.href });
    const { code, lines } = await runServiceProcess(env);
    assert.equal(code, 1, lines.join("\n"));
    const fatal = fatalRecords(serviceLines(lines));
    assert.equal(fatal.length, 1, lines.join("\n"));
    assert.equal(fatal[0].message, "could not start", what);
    assert.equal(fatal[0].database, address, `${what}: ${JSON.stringify(fatal[0])}`);
  }
});
