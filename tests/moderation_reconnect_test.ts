/**
 * A user an operator disconnected may come back at once, to an instance the disconnect's event
 * has not reached yet: the event, late, must end only the sockets opened before the disconnect.
 * Instance 1 hears NATS through a proxy the test stalls to make it late.
 */
import assert from "node:assert/strict";
import { metric } from "./support/metrics.ts";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { startCluster } from "./support/service.ts";
import { holdAnswers, joinChat, sendText, stillServes } from "./support/steps.ts";
import { within } from "./support/wait.ts";

const by = { moderator_id: "mod-1", reason: "spam" };

/** alice's chat with acme, made through instance 0's admin plane (see natsCutToSecondInstance). */
async function chatAcrossCut() {
  const setup = await natsCutToSecondInstance({}, { grpc: true });
  try {
    const admin = await setup.cluster.admin(0);
    const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
    return { ...setup, admin, chat };
  } catch (error) {
    await setup[Symbol.asyncDispose]();
    throw error;
  }
}

Deno.test("a socket opened after DisconnectUser answered is not closed by the disconnect arriving late", async () => {
  await using setup = await chatAcrossCut();
  const { cluster, proxy, admin, chat } = setup;
  await using before = await joinChat(cluster, "alice", chat.id, 0);
  await using beforeThere = await joinChat(cluster, "alice", chat.id, 1);
  await using vendor = await joinChat(cluster, "acme", chat.id, 1);

  proxy.stall("downstream");
  await admin.call("DisconnectUser", { user_id: "alice", ...by });
  assert.equal((await within(before.closed, 10_000, "the close here")).code, 4408);
  await using back = await joinChat(cluster, "alice", chat.id, 1);
  proxy.restore();
  // the late event still ends the socket opened before the disconnect, and that one alone
  assert.equal((await within(beforeThere.closed, 10_000, "the late close")).code, 4408);
  await sendText(vendor, "alice", "welcome back");
  await back.nextOfType("chat_message");
  await stillServes(back);
  await sendText(back, "acme", "reconnected");
});

Deno.test("a socket whose first read already showed DisconnectUser, made as it connected, is kept by the sweep of recent disconnects too", async () => {
  await using cluster = await startCluster({
    grpc: true,
    instances: 2,
    env: { FEED_SWEEP_SECONDS: "0.2" },
  });
  const admin = await cluster.admin(0);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  // the socket is taken in on instance 1, and reads its access once the disconnect is recorded
  const access = holdAnswers(cluster.instances[1]!.service.chat, "joinChat", {
    beforeReading: true,
  });
  const connecting = joinChat(cluster, "alice", chat.id, 1);
  await access.read;
  await admin.call("DisconnectUser", { user_id: "alice", ...by });
  access.release();
  await using socket = await connecting;

  // instance 1's sweep finds the disconnect and screens alice's socket: kept, as its event kept it
  const closed = 'chat_sanction_screens_total{outcome="closed"}';
  const kept = 'chat_sanction_screens_total{outcome="kept"}';
  for (const until = Date.now() + 5_000; (await metric(cluster, 1, kept)) < 1;) {
    assert.equal(await metric(cluster, 1, closed), 0, "the sweep closed the socket");
    assert.ok(Date.now() < until, "the socket screened by the sweep");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stillServes(socket);
});

Deno.test("a socket opened after UnbanUser answered is not closed by the lifted ban's event arriving late", async () => {
  await using setup = await chatAcrossCut();
  const { cluster, proxy, admin, chat } = setup;
  await using vendor = await joinChat(cluster, "acme", chat.id, 0);
  // instance 1 hears user events (it has a socket), late once the proxy stalls
  await using _vendorThere = await joinChat(cluster, "acme", chat.id, 1);

  proxy.stall("downstream");
  await admin.call("BanUser", { user_id: "alice", ...by, duration_seconds: 0 });
  await admin.call("UnbanUser", { user_id: "alice", ...by });
  await using back = await joinChat(cluster, "alice", chat.id, 1);
  proxy.restore();
  // sent after the ban on the same connection to NATS: it comes to instance 1 after the ban's event
  await sendText(vendor, "alice", "welcome back");
  const heard = await Promise.race([
    back.closed.then((close) => `closed ${close.code}`),
    back.nextOfType("chat_message", 10_000).then(() => "the message"),
  ]);
  assert.equal(heard, "the message");
  await stillServes(back);
});
