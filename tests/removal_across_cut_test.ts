/**
 * A vendor member removed while their socket's instance was cut off from NATS: the removal's
 * event is lost, and what the instance catches up from the store once it is back includes the
 * messages sent after the removal. The socket is sent none of them: a socket that sees a chat
 * as a vendor's member holds its events until its access has been checked again, and is checked
 * before the sockets that cannot have lost a chat. A user banned or disconnected meanwhile is
 * not shown them either: every socket holds its events until one query has read the sanctions
 * of all their users. With FAULT_FIGURES=1 the time is printed.
 */
import assert from "node:assert/strict";
import { MAX_HELD_EVENTS } from "../ws/connection.ts";
import { report } from "./support/figures.ts";
import { metric, untilMetric } from "./support/metrics.ts";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { startCluster, TEST_NATS_URL } from "./support/service.ts";
import {
  joinAllChats,
  joinChat,
  messageWithSeq,
  seedMessages,
  sendText,
  stillServes,
} from "./support/steps.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import { within } from "./support/wait.ts";
import type { TestSocket } from "./support/ws_client.ts";

const settings = {
  WS_RATE_PER_SECOND: "100000",
  WS_RATE_BURST: "100000",
  SHUTDOWN_TIMEOUT: "1",
};

/** Sockets of other customers' chats, opened first: in line for the check before any other. */
const BYSTANDERS = 40;

/**
 * Asserts that the sockets, closed now, got none of the messages sent during the cut, and
 * reports how long after the cut was restored they closed.
 */
function assertShownNothing(sockets: TestSocket[], what: string, restoredAt: number) {
  report(`${what}: closed ${Math.round(performance.now() - restoredAt)} ms after the restore`);
  for (const socket of sockets) {
    assert.deepEqual(
      socket.pending("chat_message").map((frame) => frame.message.seq),
      [],
      `${what}: a message sent during the cut reached a socket that may no longer see it`,
    );
  }
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
  assertShownNothing([removed, removedAll], "a member removed during a NATS cut", restoredAt);
  // held for the check, then sent: in order, once each
  for (let seq = 2; seq <= 4; seq++) {
    assert.equal((await kept.nextOfType("chat_message", 15_000)).message.seq, seq);
  }
  await sendText(customer, "vend-1", "after the cut");
  await messageWithSeq(kept, 5);
  assert.deepEqual(kept.pending("chat_message"), []);
  assert.deepEqual(removedAll.pending("chat_message"), []);
});

Deno.test("a user banned and one disconnected while their instance was cut off from NATS are sent none of the messages after it", async () => {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  const cutOff = cluster.instances[1]!.service.chat;
  const banned = await cutOff.createChat("cust-banned", "vend-1");
  const disconnected = await cutOff.createChat("cust-gone", "vend-1");
  const kept = await cutOff.createChat("cust-kept", "vend-1");
  const joinBystanders = async (from: number, to: number) => {
    for (let n = from; n <= to; n++) {
      const own = await cutOff.createChat(`bystander-${n}`, "vend-2");
      await joinChat(cluster, `bystander-${n}`, own.id, 1);
    }
  };
  // the sanctioned users' sockets are checked after half the others; the other half opens
  // before the sanctions, so that the disconnected socket opened well before the disconnect
  // (a socket opened within the sanction query's round trip of it counts as opened after)
  await joinBystanders(1, BYSTANDERS / 2);
  await using bannedSocket = await joinChat(cluster, "cust-banned", banned.id, 1);
  await using disconnectedSocket = await joinChat(cluster, "cust-gone", disconnected.id, 1);
  await joinBystanders(BYSTANDERS / 2 + 1, BYSTANDERS);
  await using keptSocket = await joinChat(cluster, "cust-kept", kept.id, 1);

  await proxy.cut();
  const moderator = { moderator_id: "mod", reason: "spam" };
  await cluster.main.service.chat.banUser("cust-banned", 0, moderator);
  await cluster.main.service.chat.disconnectUser("cust-gone", moderator);
  // the disconnected user's client comes back at once: the disconnect is older than this socket
  await using reopened = await joinChat(cluster, "cust-gone", disconnected.id, 1);
  // the vendor writes from the instance that stays connected
  for (const chat of [banned, disconnected, kept]) {
    await seedMessages(cluster, chat.id, { from: "vend-1", to: chat.user_id, count: 3 });
  }

  const restoredAt = performance.now();
  proxy.restore();
  const closes = await Promise.all(
    [bannedSocket, disconnectedSocket].map((socket) =>
      within(socket.closed, 15_000, "the sanctioned user's socket to close")
    ),
  );
  assert.deepEqual(closes.map((closed) => closed.code), [4403, 4408]);
  assertShownNothing(
    [bannedSocket, disconnectedSocket],
    "a ban and a disconnect during a NATS cut",
    restoredAt,
  );
  // the others are held for one query, then sent all of it, in order, once each
  for (let seq = 1; seq <= 3; seq++) {
    assert.equal((await keptSocket.nextOfType("chat_message", 15_000)).message.seq, seq);
  }
  assert.deepEqual(keptSocket.pending("chat_message"), []);
  // neither the screen nor its own check closes the socket opened after the disconnect
  await untilMetric(cluster, 1, 'chat_access_checks_total{outcome="kept"}', BYSTANDERS + 2);
  await stillServes(reopened);
  // closed once each: by the screen, or by their own checks when those came first (the sockets
  // held what the catch-up brought either way)
  const closedBy = await Promise.all([
    metric(cluster, 1, 'chat_sanction_screens_total{outcome="closed"}'),
    metric(cluster, 1, 'chat_access_checks_total{outcome="closed"}'),
  ]);
  assert.equal(closedBy[0] + closedBy[1], 2, `closed by the screen, by checks: ${closedBy}`);
});

Deno.test("a held socket whose check the store cannot answer is closed 1013 once it holds too many events", async () => {
  // the second instance reaches both PostgreSQL and NATS through proxies the test controls
  await using cluster = await startCluster({ env: { ...settings, WS_FLOOD_LIMIT: "100000" } });
  await using databaseProxy = startTcpProxy(cluster.databaseUrl);
  await using natsProxy = startTcpProxy(TEST_NATS_URL);
  await cluster.startInstance({ DATABASE_URL: databaseProxy.url, NATS_URL: natsProxy.url });
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
  // closed while its proxies are up: with the database still cut, its pool's reconnect timers
  // would outlive the pool's end (postgres.js 3.4.9 does not clear them), and the test
  databaseProxy.restore();
  await cluster.instances[1]!.service.close();
});
