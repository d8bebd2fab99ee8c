/**
 * An instance that ends while cut off from NATS (a restart, a crash, a deploy) never sends the
 * resync request its reconnect would have sent: what it published meanwhile was lost to the
 * other instances. Its outage is recorded in the database, and the next instance to start
 * sends the request in its place. With FAULT_FIGURES=1 the measured time is printed.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { report } from "./support/figures.ts";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import type { TestCluster } from "./support/service.ts";
import { acked, joinChat, messageWithSeq, refused, sendText } from "./support/steps.ts";
import { within } from "./support/wait.ts";

const settings = {
  WS_RATE_PER_SECOND: "100000",
  WS_RATE_BURST: "100000",
  SHUTDOWN_TIMEOUT: "1",
};

/** A connection to the cluster's database, ended on dispose. */
function databaseOf(cluster: TestCluster) {
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  return Object.assign(sql, { [Symbol.asyncDispose]: () => sql.end() });
}

/** The outages recorded in the cluster's database, read every 25 ms until `done` says so. */
async function untilOutages(sql: postgres.Sql, done: (count: number) => boolean, what: string) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [{ count }] = await sql<[{ count: number }]>`
      select count(*)::int as count from bus_outages`;
    if (done(count)) return;
    if (Date.now() > deadline) assert.fail(`${what}: ${count} outages recorded`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

Deno.test("a ban and an edit made on an instance that ends while cut off from NATS reach the other instance's sockets once the next instance starts", async () => {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  await using sql = databaseOf(cluster);
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const spammersChat = await cluster.main.service.chat.createChat("spammer", "acme");
  // on the first instance, which keeps its NATS connection
  await using acme = await joinChat(cluster, "acme", chat.id, 0);
  await using spammer = await joinChat(cluster, "spammer", spammersChat.id, 0);
  // on the second, which is cut off and then ends
  await using alice = await joinChat(cluster, "alice", chat.id, 1);
  const sent = await sendText(alice, "acme", "m1");
  await messageWithSeq(acme, 1);

  await proxy.cut();
  await untilOutages(sql, (count) => count === 1, "the cut-off instance's outage recorded");
  await cluster.instances[1]!.service.chat.banUser("spammer", 0, {
    moderator_id: "mod",
    reason: "spam",
  });
  await acked(alice, { action: "edit_message", message_id: sent.id, content: "m1, edited" });
  await cluster.instances[1]!.service.close();
  // lost, not late: nothing has reached the first instance's sockets; the banned user's still
  // answers (the store, asked beside the read, refuses what it asks to read)
  await refused(spammer, { action: "unread_message" }, "forbidden");
  assert.deepEqual(acme.pending("message_edited"), []);

  const startedAt = performance.now();
  await cluster.startInstance({ NATS_URL: setup.natsUrl });
  const closed = await within(spammer.closed, 15_000, "the banned user's socket to close");
  assert.equal(closed.code, 4403);
  const edit = await acme.nextOfType("message_edited", 15_000);
  assert.deepEqual([edit.message.id, edit.message.content], [sent.id, "m1, edited"]);
  report(
    `an instance ended while cut off from NATS: its ban and edit reached the other instance ${
      Math.round(performance.now() - startedAt)
    } ms after the next instance began to start`,
  );
  await untilOutages(sql, (count) => count === 0, "the outage's record removed");

  // once: the edit does not come again
  await using newcomer = await joinChat(cluster, "alice", chat.id, 2);
  await sendText(newcomer, "acme", "after");
  await messageWithSeq(acme, 2);
  assert.deepEqual(acme.pending("message_edited"), []);
});

Deno.test("an instance back on NATS removes its outage's record once its own resync request is out, and a shutdown records none", async () => {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  await using sql = databaseOf(cluster);
  await proxy.cut();
  await untilOutages(sql, (count) => count === 1, "the cut-off instance's outage recorded");
  const [{ instance_id }] = await sql<[{ instance_id: string }]>`
    select instance_id from bus_outages`;
  assert.equal(instance_id, cluster.instances[1]!.service.instanceId);
  proxy.restore();
  await untilOutages(sql, (count) => count === 0, "the outage's record removed");

  // a shutdown is no outage: closing its connection records nothing
  await cluster.instances[0]!.service.close();
  await untilOutages(sql, (count) => count === 0, "no outage recorded by a shutdown");
});

Deno.test("an instance that ends while NATS silently stopped taking its publishes records the outage, and the next instance to start makes its ban good", async () => {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  await using sql = databaseOf(cluster);
  const spammersChat = await cluster.main.service.chat.createChat("spammer", "acme");
  await using spammer = await joinChat(cluster, "spammer", spammersChat.id, 0);
  // the second instance's connection stays open but nothing it sends gets through, and its
  // client has not noticed (a ping goes out every 20 s): no disconnect, so no outage recorded
  proxy.stall();
  await cluster.instances[1]!.service.chat.banUser("spammer", 0, {
    moderator_id: "mod",
    reason: "spam",
  });
  await proxy.held();
  await untilOutages(sql, (count) => count === 0, "no outage recorded while unnoticed");
  await cluster.instances[1]!.service.close();
  await untilOutages(sql, (count) => count === 1, "the outage recorded at the shutdown");
  // still open, answering: the ban's event was lost
  await refused(spammer, { action: "unread_message" }, "forbidden");

  await cluster.startInstance({ NATS_URL: setup.natsUrl });
  const closed = await within(spammer.closed, 15_000, "the banned user's socket to close");
  assert.equal(closed.code, 4403);
  await untilOutages(sql, (count) => count === 0, "the outage's record removed");
});
