import assert from "node:assert/strict";
import postgres from "postgres";
import { ConfigError, loadConfig } from "../config.ts";
import { failure, type Reply, Status } from "./support/admin_client.ts";
import { readFileDescriptor } from "../grpc/file_descriptors.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { untilNoStatementRuns } from "./support/statement_reads.ts";
import { joinChat, seedMessages } from "./support/steps.ts";
import { within } from "./support/wait.ts";
import { follow } from "./support/watch_stream.ts";

const RPCS = [
  "CreateChat",
  "GetChat",
  "ListChats",
  "AddVendorMember",
  "RemoveVendorMember",
  "ListVendorMembers",
  "GetMessage",
  "ListMessages",
  "SearchMessages",
  "DeleteMessage",
  "BanUser",
  "UnbanUser",
  "ListBans",
  "DisconnectUser",
  "ListModerationActions",
  "WatchEvents",
  "GetStats",
];

Deno.test("every ChatAdmin call without the right bearer token is UNAUTHENTICATED", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const wrong = [
    { token: null },
    { token: "wrong-token-of-some-length" },
    { token: `${cluster.adminToken}x` },
    { authorization: `Basic ${cluster.adminToken}` },
    { authorization: cluster.adminToken },
  ];
  for (const options of wrong) {
    for (const method of RPCS.filter((name) => name !== "WatchEvents")) {
      const error = await failure(admin.call(method, {}, options));
      assert.equal(error.code, Status.UNAUTHENTICATED, `${method} ${JSON.stringify(options)}`);
    }
  }
  // nothing was done: the audit log and the chats are empty
  assert.deepEqual((await admin.call("ListChats")).chats, []);
  assert.deepEqual((await admin.call("ListModerationActions")).actions, []);
  // the scheme is case-insensitive (RFC 6750)
  const stats = await admin.call("GetStats", {}, { authorization: `bearer ${cluster.adminToken}` });
  assert.equal(stats.instance_id, cluster.main.service.instanceId);
});

Deno.test("health answers SERVING without a token while the database and NATS answer", async () => {
  await using cluster = await startCluster({ grpc: true });
  const anonymous = await cluster.admin(0, { token: null });
  assert.equal(await anonymous.health(), "SERVING");
  assert.equal(await anonymous.health("chat.admin.v1.ChatAdmin"), "SERVING");
  const unknown = await failure(anonymous.health("no.such.Service"));
  assert.equal(unknown.code, Status.NOT_FOUND);
});

Deno.test("server reflection describes ChatAdmin and health, so tools need no proto file", async () => {
  await using cluster = await startCluster({ grpc: true });
  const anonymous = await cluster.admin(0, { token: null });
  const [list, file] = await anonymous.reflect([
    { list_services: "" },
    { file_containing_symbol: "chat.admin.v1.ChatAdmin" },
  ]);
  const services = list!.list_services_response.service.map((each: Reply) => each.name);
  for (const name of ["chat.admin.v1.ChatAdmin", "grpc.health.v1.Health"]) {
    assert.ok(services.includes(name), `${name} in ${services}`);
  }
  // as grpcurl does: the file of the service, then every file it imports, by name
  const files = new Map<string, ReturnType<typeof readFileDescriptor>>();
  const add = (reply: Reply) => {
    assert.ok(reply.file_descriptor_response, JSON.stringify(reply.error_response));
    for (const bytes of reply.file_descriptor_response.file_descriptor_proto) {
      const summary = readFileDescriptor(bytes);
      files.set(summary.name, summary);
    }
  };
  add(file!);
  const admin = [...files.values()].find((each) => each.package === "chat.admin.v1")!;
  assert.deepEqual(admin.services.map((each) => each.name), ["ChatAdmin"]);
  assert.deepEqual(admin.services[0]!.methods, RPCS);
  const missing = admin.dependencies.filter((name) => !files.has(name));
  for (
    const reply of await anonymous.reflect(missing.map((name) => ({ file_by_filename: name })))
  ) {
    add(reply);
  }
  // the admin file declares the file that defines google.protobuf.Timestamp
  const imported = admin.dependencies.map((name) => files.get(name)!);
  assert.deepEqual(imported.map((each) => each.package), ["google.protobuf"]);
});

Deno.test("GetStats counts chats and messages, and this instance's connections", async () => {
  await using cluster = await startCluster({ grpc: true, instances: 2 });
  const [first, second] = [await cluster.admin(0), await cluster.admin(1)];
  const chat = await first.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await first.call("CreateChat", { user_id: "bob", vendor_id: "acme" });
  await seedMessages(cluster, chat.id, { from: "alice", to: "acme", count: 3 });
  await using _alice = await joinChat(cluster, "alice", chat.id, 0);
  await using _vendor = await joinChat(cluster, "acme", chat.id, 0);
  const stats = await first.call("GetStats");
  assert.deepEqual(stats, {
    chats: 2,
    messages: 3,
    active_connections: 2,
    instance_id: cluster.instances[0]!.service.instanceId,
  });
  const other = await second.call("GetStats");
  assert.equal(other.active_connections, 0);
  assert.equal(other.instance_id, cluster.instances[1]!.service.instanceId);
});

Deno.test("the admin plane refuses to run without GRPC_ADMIN_TOKEN and can be turned off", async () => {
  assert.throws(
    () => loadConfig({ JWT_SECRET: "x".repeat(32), GRPC_ENABLED: "1" }),
    (error: unknown) => error instanceof ConfigError && /GRPC_ADMIN_TOKEN/.test(error.message),
  );
  await using cluster = await startCluster();
  assert.equal(cluster.main.service.grpcPort, null);
  assert.equal(cluster.main.grpcAddress, null);
});

/** A socket of alice's on a chat with acme, open on the first instance. */
async function openSocket(cluster: TestCluster) {
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  return await joinChat(cluster, "alice", chat.id);
}

Deno.test("shutting down with a health Watch open ends it at once and closes WebSockets with 1012", async () => {
  await using cluster = await startCluster({ grpc: true, env: { SHUTDOWN_TIMEOUT: "10" } });
  const alice = await openSocket(cluster);
  const watcher = await cluster.admin(0, { token: null });
  const stream = watcher.watchHealth();
  stream.on("error", () => {});
  const status = new Promise<{ code: number }>((resolve) => stream.on("status", resolve));
  const first = await within(
    new Promise<Reply>((resolve) => stream.once("data", resolve)),
    5_000,
    "the first health status",
  );
  assert.equal(first.status, "SERVING");

  const startedAt = performance.now();
  await cluster.main.service.close();
  const elapsedMs = performance.now() - startedAt;
  assert.ok(elapsedMs < 3_000, `close took ${Math.round(elapsedMs)} ms of SHUTDOWN_TIMEOUT=10 s`);
  assert.equal((await within(alice.closed, 2_000, "the socket to close")).code, 1012);
  assert.equal((await within(status, 2_000, "the end of the Watch")).code, Status.UNAVAILABLE);
});

Deno.test("a gRPC call that holds its plane's shutdown still leaves WebSockets their 1012", async () => {
  await using cluster = await startCluster({ grpc: true, env: { SHUTDOWN_TIMEOUT: "2" } });
  const alice = await openSocket(cluster);
  const tool = await cluster.admin(0, { token: null });
  // a reflection stream its client never ends: the gRPC plane waits for it until the deadline
  const stream = tool.openReflection();
  stream.on("error", () => {});
  const answered = new Promise((resolve) => stream.once("data", resolve));
  stream.write({ list_services: "" });
  await within(answered, 5_000, "the reflection answer");

  await cluster.main.service.close();
  assert.equal((await within(alice.closed, 2_000, "the socket to close")).code, 1012);
});

Deno.test("an optional filter of blanks is INVALID_ARGUMENT naming it, never read as no filter", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const cases: Array<[string, object, string]> = [
    ["ListChats", { user_id: " " }, "user_id"],
    ["ListChats", { vendor_id: "\t" }, "vendor_id"],
    ["SearchMessages", { query: "lamp", chat_id: "  " }, "chat_id"],
    ["SearchMessages", { query: "lamp", sender_id: " " }, "sender_id"],
    ["ListModerationActions", { moderator_id: " " }, "moderator_id"],
    ["ListModerationActions", { target_user_id: "\n" }, "target_user_id"],
  ];
  for (const [method, request, field] of cases) {
    const error = await failure(admin.call(method, request));
    assert.equal(error.code, Status.INVALID_ARGUMENT, `${method} ${field}: ${error.details}`);
    assert.match(error.details, new RegExp(`^${field}: `), method);
  }
  // a stream of one chat's or one user's events must not become a stream of everyone's
  for (const [request, field] of [[{ chat_id: " " }, "chat_id"], [{ user_id: " " }, "user_id"]]) {
    const watched = follow(admin.watch(request as object));
    const status = await within(watched.ended, 5_000, `the end of a watch of ${field} " "`);
    assert.equal(status.code, Status.INVALID_ARGUMENT, `${field}: ${status.details}`);
    assert.match(status.details, new RegExp(`^${field}: `));
  }
});

Deno.test("a GetStats call its client gives up on ends its count at once, freeing its connection of the shared pool", async () => {
  await using cluster = await startCluster({ grpc: true, nats: false });
  const admin = await cluster.admin();
  const observer = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
  const locker = await observer.reserve();
  try {
    // a count that cannot finish (at 2M chats it takes a third of a second; here a migration
    // holds the table): the caller's deadline passes
    await locker`begin`;
    await locker`lock table chats in access exclusive mode`;
    const given = await failure(admin.call("GetStats", {}, { deadlineMs: 200 }));
    assert.equal(given.code, Status.DEADLINE_EXCEEDED);
    await untilNoStatementRuns(observer, "sum(last_seq)", 1_500);
  } finally {
    await locker`rollback`;
    locker.release();
    await observer.end();
  }
});
