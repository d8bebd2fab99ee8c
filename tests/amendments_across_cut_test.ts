/**
 * Edits and deletions made while one of two instances is cut off from NATS. Their events are
 * lost on the bus whichever side was cut off: the instance they were made on (`sockets: 0`:
 * its publishes are dropped when the NATS client redials) or the instance whose sockets they
 * concern (`sockets: 1`: it was not subscribed meanwhile). Once it is back they are sent again
 * from the store, once each. With FAULT_FIGURES=1 the measured times are printed.
 */
import assert from "node:assert/strict";
import { report } from "./support/figures.ts";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { startNatsServer } from "./support/nats_server.ts";
import { closeThroughDatabaseProxy, startCluster } from "./support/service.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import {
  acked,
  joinAllChats,
  joinChat,
  messageWithSeq,
  sendText,
  stillServes,
} from "./support/steps.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

const settings = {
  WS_RATE_PER_SECOND: "100000",
  WS_RATE_BURST: "100000",
  SHUTDOWN_TIMEOUT: "1",
};

/**
 * How long the store stays away after NATS is back in the last test: longer than the replay
 * once kept trying (five attempts, 2 s apart).
 */
const STORE_AWAY_MS = 12_000;

function edited(socket: TestSocket, messageId: string, content: string, ms?: number) {
  return socket.next(
    (frame) =>
      frame.type === "message_edited" && frame.message.id === messageId &&
      frame.message.content === content,
    `message_edited of ${messageId} to "${content}"`,
    ms,
  );
}

async function amendedAcrossCut(sockets: 0 | 1) {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  const elsewhere = sockets === 0 ? 1 : 0;
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, elsewhere);
  await using acme = await joinChat(cluster, "acme", chat.id, sockets);
  await using acmeAll = await joinAllChats(cluster, "acme", sockets);
  const receivers = [acme, acmeAll];
  const sent: Frame[] = [];
  for (let n = 1; n <= 4; n++) sent.push(await sendText(alice, "acme", `m${n}`));
  for (const socket of receivers) await messageWithSeq(socket, 4);
  // delivered live before the cut: within the replayed window, and not to be sent again
  await acked(alice, { action: "edit_message", message_id: sent[0]!.id, content: "m1, edited" });
  for (const socket of receivers) await edited(socket, sent[0]!.id, "m1, edited");

  await proxy.cut();
  await acked(alice, { action: "delete_message", message_id: sent[1]!.id });
  await acked(alice, { action: "edit_message", message_id: sent[2]!.id, content: "m3, edited" });
  const lost = await fetch(`${cluster.instances[1]!.httpUrl}/readyz`);
  await lost.body?.cancel();
  assert.equal(lost.status, 503, "the second instance is cut off");
  // lost, not late: nothing has reached the sockets
  await stillServes(acme);
  await stillServes(acmeAll, chat.id);
  for (const socket of receivers) {
    assert.deepEqual(socket.pending("message_deleted"), []);
    assert.deepEqual(socket.pending("message_edited"), []);
  }

  const restoredAt = performance.now();
  proxy.restore();
  for (const socket of receivers) {
    const deleted = await socket.nextOfType("message_deleted", 15_000);
    assert.deepEqual(
      [deleted.chat_id, deleted.message_id, deleted.seq, deleted.deleted_by],
      [chat.id, sent[1]!.id, 2, "alice"],
    );
    assert.ok(Number.isFinite(Date.parse(deleted.deleted_at)));
    const edit = await edited(socket, sent[2]!.id, "m3, edited", 15_000);
    assert.equal(edit.message.seq, 3);
    assert.notEqual(edit.message.edited_at, null);
  }
  report(
    `amendments lost while instance ${1 - sockets} was cut off: replayed ${
      Math.round(performance.now() - restoredAt)
    } ms after the cut was restored`,
  );

  // each once: neither the edit delivered before the cut nor the replayed ones come again
  await sendText(alice, "acme", "after");
  for (const socket of receivers) {
    await messageWithSeq(socket, 5);
    assert.deepEqual(socket.pending("message_edited"), []);
    assert.deepEqual(socket.pending("message_deleted"), []);
  }
  // the sender's own socket had them live, and gets nothing again either
  await messageWithSeq(alice, 5);
  assert.equal(alice.pending("message_deleted").length, 1);
  assert.equal(alice.pending("message_edited").length, 2);
}

Deno.test("edits and deletions made on an instance cut off from NATS reach the other instance's sockets once it is back, once each", async () => {
  await amendedAcrossCut(0);
});

Deno.test("an instance cut off from NATS while messages are edited and deleted elsewhere sends them to its sockets once it is back, once each", async () => {
  await amendedAcrossCut(1);
});

/**
 * The NATS outage and a database outage overlap: a partition heals for NATS first, or a
 * PostgreSQL failover is still under way when NATS comes back. The replay waits for the store.
 */
Deno.test("an edit lost with a NATS outage reaches the sockets once both NATS and the store are back, however long the store takes", async () => {
  await using nats = await startNatsServer();
  await using natsProxy = startTcpProxy(nats.url);
  const cluster = await startCluster({
    instances: 0,
    env: {
      WS_RATE_PER_SECOND: "1000",
      WS_RATE_BURST: "1000",
      SHUTDOWN_TIMEOUT: "1",
      FEED_SWEEP_SECONDS: "1",
    },
  });
  await using dbProxy = startTcpProxy(cluster.databaseUrl);
  // closed before the proxy is cut: cut first, what the second instance asks the store as it
  // closes (its sweeps run every second) leaves postgres.js's reconnect timers behind the test
  await using _cluster = {
    [Symbol.asyncDispose]: () => closeThroughDatabaseProxy(cluster, dbProxy),
  };
  await cluster.startInstance({ NATS_URL: nats.url });
  await cluster.startInstance({ NATS_URL: natsProxy.url, DATABASE_URL: dbProxy.url });

  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, 0);
  await using acme = await joinChat(cluster, "acme", chat.id, 1);
  const sent = await sendText(alice, "acme", "m1");
  await messageWithSeq(acme, 1);

  await natsProxy.cut(); // instance 1 cut off from NATS
  await acked(alice, { action: "edit_message", message_id: sent.id, content: "m1, edited" });
  await dbProxy.cut(); // ... and, for a while, from the database
  natsProxy.restore(); // NATS comes back first: the replay runs now, against a store that is away
  await new Promise((resolve) => setTimeout(resolve, STORE_AWAY_MS));
  dbProxy.restore(); // the store is back

  const edit = await acme.next(
    (frame) => frame.type === "message_edited" && frame.message.content === "m1, edited",
    "the edit made during the outage",
    15_000,
  );
  assert.equal(edit.message.seq, 1);
});
