/**
 * A vendor member removed while their socket's instance was cut off from NATS: the removal's
 * event is lost, and what the instance catches up from the store once it is back includes the
 * messages sent after the removal. The socket is sent none of them: a socket that sees a chat
 * as a vendor's member holds its events until its access has been checked again, and is checked
 * before the sockets that cannot have lost a chat. With FAULT_FIGURES=1 the time is printed.
 */
import assert from "node:assert/strict";
import { MAX_HELD_EVENTS } from "../ws/connection.ts";
import { untilMetric } from "./support/metrics.ts";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { startCluster, TEST_NATS_URL } from "./support/service.ts";
import { joinAllChats, joinChat, messageWithSeq, sendText } from "./support/steps.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import { within } from "./support/wait.ts";

const settings = {
  WS_RATE_PER_SECOND: "100000",
  WS_RATE_BURST: "100000",
  SHUTDOWN_TIMEOUT: "1",
};

/** Sockets of other customers' chats, opened first: in line for the check before any other. */
const BYSTANDERS = 40;

function report(line: string) {
  if (Deno.env.get("FAULT_FIGURES") === "1") console.log(`[figures] ${line}`);
}

Deno.test("a vendor member removed while their instance was cut off from NATS is sent none of the messages after the removal, and a member still in the chat gets them all", async () => {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  // the sockets are on the second instance, the one cut off
  const cutOff = cluster.instances[1]!.service.chat;
  await cutOff.addVendorMember("vend-1", "agent-1", "agent");
  await cutOff.addVendorMember("vend-1", "agent-2", "agent");
  const chat = await cutOff.createChat("cust-1", "vend-1");
  // closed with the cluster
  for (let n = 1; n <= BYSTANDERS; n++) {
    const own = await cutOff.createChat(`bystander-${n}`, "vend-2");
    await joinChat(cluster, `bystander-${n}`, own.id, 1);
  }
  await using removed = await joinChat(cluster, "agent-1", chat.id, 1);
  await using removedAll = await joinAllChats(cluster, "agent-1", 1);
  await using kept = await joinChat(cluster, "agent-2", chat.id, 1);
  await using customer = await joinChat(cluster, "cust-1", chat.id, 0);
  await sendText(customer, "vend-1", "before");
  for (const socket of [removed, removedAll, kept]) await messageWithSeq(socket, 1);

  await proxy.cut();
  await cluster.main.service.chat.removeVendorMember("vend-1", "agent-1");
  for (let n = 1; n <= 3; n++) await sendText(customer, "vend-1", `after the removal ${n}`);

  const restoredAt = performance.now();
  proxy.restore();
  const closed = await within(removed.closed, 15_000, "the removed member's socket to close");
  assert.equal(closed.code, 4403);
  assert.deepEqual((await removedAll.nextOfType("chats", 15_000)).chats, []);
  report(
    `a member removed during a NATS cut: socket closed ${
      Math.round(performance.now() - restoredAt)
    } ms after the cut was restored`,
  );
  for (const socket of [removed, removedAll]) {
    assert.deepEqual(
      socket.pending("chat_message").map((frame) => frame.message.seq),
      [],
      "a message sent after the removal reached the removed member",
    );
  }
  // held for the check, then sent: in order, once each
  for (let seq = 2; seq <= 4; seq++) {
    assert.equal((await kept.nextOfType("chat_message", 15_000)).message.seq, seq);
  }
  await sendText(customer, "vend-1", "after the cut");
  await messageWithSeq(kept, 5);
  assert.deepEqual(kept.pending("chat_message"), []);
  assert.deepEqual(removedAll.pending("chat_message"), []);
});

Deno.test("a held socket whose check the store cannot answer is closed 1013 once it holds too many events", async () => {
  // the second instance reaches both PostgreSQL and NATS through proxies the test controls
  await using cluster = await startCluster({ env: { ...settings, WS_FLOOD_LIMIT: "100000" } });
  const database = new URL(cluster.databaseUrl);
  await using databaseProxy = startTcpProxy({
    hostname: database.hostname,
    port: Number(database.port) || 5432,
  });
  database.hostname = "127.0.0.1";
  database.port = String(databaseProxy.port);
  const nats = new URL(TEST_NATS_URL);
  await using natsProxy = startTcpProxy({ hostname: nats.hostname, port: Number(nats.port) });
  await cluster.startInstance({
    DATABASE_URL: database.toString(),
    NATS_URL: `nats://127.0.0.1:${natsProxy.port}`,
  });
  const service = cluster.main.service.chat;
  await service.addVendorMember("vend-1", "agent-1", "agent");
  const chat = await service.createChat("cust-1", "vend-1");
  await using agent = await joinChat(cluster, "agent-1", chat.id, 1);
  await using customer = await joinChat(cluster, "cust-1", chat.id, 0);

  await natsProxy.cut();
  await databaseProxy.cut();
  natsProxy.restore();
  await untilMetric(cluster, 1, 'chat_access_checks_total{outcome="unanswered"}', 1);
  // nothing reaches the held socket, and what it holds has a bound
  for (let n = 0; n <= MAX_HELD_EVENTS; n++) {
    customer.send({ action: "typing", is_typing: n % 2 === 0 });
  }
  const closed = await within(agent.closed, 15_000, "the held socket to close");
  assert.equal(closed.code, 1013);
  assert.deepEqual(agent.pending("typing"), []);
  databaseProxy.restore();
});
