/**
 * Fault tests: PostgreSQL cut, stalled and restored under a running service, and NATS stopped
 * and started again between two instances. The database is reached through the tests' TCP
 * proxy (support/tcp_proxy.ts, in the manner of toxiproxy); NATS is a private `nats-server`.
 * With FAULT_FIGURES=1 the measured times are printed.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { failure, Status } from "./support/admin_client.ts";
import { report } from "./support/figures.ts";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { startNatsServer } from "./support/nats_server.ts";
import { metric, untilMetric } from "./support/metrics.ts";
import { readyz } from "./support/readyz.ts";
import { closeThroughDatabaseProxy, startCluster, TEST_NATS_URL } from "./support/service.ts";
import {
  joinAllChats,
  joinChat,
  messageWithSeq,
  refused,
  sendText,
  stillServes,
} from "./support/steps.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import type { Frame } from "./support/ws_client.ts";
import { within } from "./support/wait.ts";

const settings = {
  // a handful of frames: the rate limit is not under test
  WS_RATE_PER_SECOND: "100000",
  WS_RATE_BURST: "100000",
  // After a lost connection postgres.js's `end()` waits for the shutdown deadline (a quirk of
  // the library under Deno's node:net); a short deadline keeps these tests short.
  SHUTDOWN_TIMEOUT: "1",
};

/** A cluster whose one instance reaches its database through a proxy the test controls. */
async function clusterBehindProxy(
  options: { grpc?: boolean; nats?: boolean; env?: Record<string, string> } = {},
) {
  const cluster = await startCluster({
    instances: 0,
    nats: options.nats ?? false,
    env: { ...settings, ...options.env },
    ...(options.grpc ? { grpc: true } : {}),
  });
  const proxy = startTcpProxy(cluster.databaseUrl);
  try {
    await cluster.startInstance({ DATABASE_URL: proxy.url });
  } catch (error) {
    await cluster[Symbol.asyncDispose]();
    await proxy[Symbol.asyncDispose]();
    throw error;
  }
  return {
    cluster,
    proxy,
    [Symbol.asyncDispose]: () => closeThroughDatabaseProxy(cluster, proxy),
  };
}

/** Runs `work`; its result and how long it took, in ms. */
async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await work();
  return [result, Math.round(performance.now() - start)];
}

function textTo(receiverId: string, content: string, extra: Frame = {}): Frame {
  return { action: "send_message", receiver_id: receiverId, media_type: "text", content, ...extra };
}

async function rowsByClientId(databaseUrl: string, chatId: string) {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<Array<{ client_id: string; count: number }>>`
      select client_id, count(*)::int as count from messages
      where chat_id = ${chatId} and client_id is not null
      group by client_id order by client_id`;
    return [...rows];
  } finally {
    await sql.end();
  }
}

Deno.test("with PostgreSQL cut, every action answers unavailable at once, /readyz is 503, and the service recovers by itself", async () => {
  await using setup = await clusterBehindProxy({ grpc: true });
  const { cluster, proxy } = setup;
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id);
  await using acme = await joinChat(cluster, "acme", chat.id);
  const first = await sendText(alice, "acme", "before the cut");
  await acme.nextOfType("chat_message");
  const admin = await cluster.admin();

  await proxy.cut();
  const [error, unavailableMs] = await timed(() =>
    refused(alice, textTo("acme", "during the cut", { client_id: "c-1" }), "unavailable")
  );
  assert.equal(error.action, "send_message");
  assert.ok(unavailableMs < 2_500, `answered after ${unavailableMs} ms`);
  report(`PostgreSQL cut: send_message answered unavailable after ${unavailableMs} ms`);
  const others: Frame[] = [
    { action: "load_latest_chat" },
    { action: "unread_message" },
    { action: "read_message", message_id: first.id },
    { action: "read_up_to", seq: 1 },
    { action: "edit_message", message_id: first.id, content: "changed" },
    { action: "delete_message", message_id: first.id },
  ];
  for (const frame of others) await refused(acme, frame, "unavailable");
  // many in a row: the driver's reconnect backoff must not grow into a hang
  for (let n = 0; n < 20; n++) {
    const [, ms] = await timed(() => refused(alice, textTo("acme", `retry ${n}`), "unavailable"));
    assert.ok(ms < 2_500, `attempt ${n} answered after ${ms} ms`);
  }
  const rpc = await failure(admin.call("GetChat", { chat_id: chat.id }));
  assert.equal(rpc.code, Status.UNAVAILABLE);
  const media = await fetch(`${cluster.main.httpUrl}/v1/media/${crypto.randomUUID()}`, {
    headers: { authorization: `Bearer ${await cluster.token("alice")}` },
  });
  assert.equal(media.status, 503);
  await media.body?.cancel();
  assert.deepEqual(await readyz(cluster.main.httpUrl), {
    status: 503,
    body: { ready: false, checks: { database: false }, reason: "not answering: database" },
  });
  const health = await fetch(`${cluster.main.httpUrl}/healthz`);
  assert.equal(health.status, 200, "the process is alive; only readiness fails");
  await health.body?.cancel();
  const late = await cluster.openChat("acme", chat.id);
  assert.equal((await late.closed).code, 1013, "a socket that cannot be set up is told to retry");

  proxy.restore();
  const restoredAt = performance.now();
  // the first query may still meet a connection that died with the cut: retry as a client would
  let retried: Frame | undefined;
  for (let attempt = 0; attempt < 5 && !retried; attempt++) {
    const answer = await alice.request(textTo("acme", "during the cut", { client_id: "c-1" }));
    if (answer.type === "ack") retried = answer.message;
    else assert.equal(answer.code, "unavailable");
  }
  report(
    `PostgreSQL restored: the retried send was acknowledged after ${
      Math.round(performance.now() - restoredAt)
    } ms`,
  );
  assert.equal(retried?.seq, 2, "nothing sent during the cut was stored");
  assert.equal((await acme.nextOfType("chat_message")).message.id, retried.id);
  assert.equal((await readyz(cluster.main.httpUrl)).status, 200);
  assert.equal((await admin.call("GetChat", { chat_id: chat.id })).id, chat.id);
  await using again = await joinChat(cluster, "acme", chat.id);
  assert.equal((await acme.request({ action: "read_up_to", seq: 2 })).type, "ack");
  assert.equal((await again.nextOfType("messages_read")).count, 2);
});

Deno.test("with PostgreSQL stalled, sends answer unavailable within the store timeout and retries store each message once", async () => {
  await using setup = await clusterBehindProxy();
  const { cluster, proxy } = setup;
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id);
  await using acme = await joinChat(cluster, "acme", chat.id);
  await sendText(alice, "acme", "before the stall");
  for (const socket of [alice, acme]) await messageWithSeq(socket, 1);

  // packets dropped, connections open: nothing closes, nothing answers
  proxy.stall();
  const inFlight = alice.request(textTo("acme", "in flight", { client_id: "s-1" }), 15_000);
  await proxy.held();
  // from another socket (one socket's frames are handled one at a time): waits behind the first
  const queued = acme.request(textTo("alice", "queued", { client_id: "s-2" }), 15_000);
  const [[first, second], unavailableMs] = await timed(() => Promise.all([inFlight, queued]));
  report(`PostgreSQL stalled: both sends answered unavailable after ${unavailableMs} ms`);
  assert.equal(first.code, "unavailable");
  assert.equal(second.code, "unavailable");
  assert.ok(unavailableMs < 7_000, `answered after ${unavailableMs} ms`);

  proxy.restore();
  // The write in flight reaches the database after all (its outcome was unknown to the
  // sender); the queued one was dropped. Retried with their client_ids, each is stored once.
  const [[retriedFirst, retriedSecond], recoveryMs] = await timed(() =>
    Promise.all([
      sendText(alice, "acme", "in flight", { client_id: "s-1" }),
      sendText(acme, "alice", "queued", { client_id: "s-2" }),
    ])
  );
  report(`PostgreSQL un-stalled: both retries were acknowledged after ${recoveryMs} ms`);
  assert.deepEqual([retriedFirst.seq, retriedSecond.seq], [2, 3]);
  for (const socket of [alice, acme]) {
    for (const seq of [2, 3]) await messageWithSeq(socket, seq);
    assert.deepEqual(socket.pending("chat_message"), [], "each message arrived once");
  }
  assert.deepEqual(await rowsByClientId(cluster.databaseUrl, chat.id), [
    { client_id: "s-1", count: 1 },
    { client_id: "s-2", count: 1 },
  ]);
});

Deno.test("with PostgreSQL stalled, frames piling up behind a stuck action are refused at once with rate_limited, and a socket that keeps piling is closed 4429", async () => {
  await using setup = await clusterBehindProxy({
    // at most 4 frames (a burst) and 8192 characters wait behind the one in hand
    env: { WS_RATE_BURST: "4", MAX_FRAME_BYTES: "8192", WS_FLOOD_LIMIT: "4" },
  });
  const { cluster, proxy } = setup;
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id);
  await using acme = await joinChat(cluster, "acme", chat.id);
  const reply = (socket: typeof alice, id: string) =>
    socket.next((frame) => frame.request_id === id, `the reply to ${id}`);
  const typing = (id: string, padding = 0) => ({
    action: "typing",
    is_typing: true,
    request_id: id,
    // unknown fields are ignored, but held while the frame waits
    padding: "p".repeat(padding),
  });

  proxy.stall();
  alice.send({ ...textTo("acme", "stuck"), request_id: "alice-stuck" });
  acme.send({ ...textTo("alice", "stuck"), request_id: "acme-stuck" });
  await proxy.held();
  const answered = (socket: typeof alice, id: string) =>
    socket.frames.some((frame) => frame.request_id === id);

  // by count: four wait, the fifth and sixth are refused while the stuck send is still in hand
  for (let n = 1; n <= 6; n++) alice.send(typing(`alice-${n}`));
  for (const id of ["alice-5", "alice-6"]) {
    const refusal = await reply(alice, id);
    assert.equal(refusal.type, "error");
    assert.equal(refusal.code, "rate_limited");
    assert.equal(refusal.action, "typing");
  }
  // by size: one of 5000 characters waits, the next does not fit; refused on, it is flooding
  acme.send(typing("acme-1", 5000));
  for (let n = 2; n <= 4; n++) {
    acme.send(typing(`acme-${n}`, 5000));
    assert.equal((await reply(acme, `acme-${n}`)).code, "rate_limited");
  }
  acme.send(typing("acme-5", 5000));
  assert.equal((await within(acme.closed, 2_000, "acme's close")).code, 4429);
  assert.ok(
    !answered(alice, "alice-stuck") && !answered(acme, "acme-stuck"),
    "the refusals came while the stuck sends were in hand",
  );

  proxy.restore();
  await reply(alice, "alice-stuck");
  for (let n = 1; n <= 4; n++) assert.equal((await reply(alice, `alice-${n}`)).type, "ack");
  await stillServes(alice);
  assert.deepEqual(
    alice.frames.filter((frame) => frame.request_id === "alice-5" || frame.request_id === "alice-6")
      .length,
    2,
    "a refused frame is answered once and never handled later",
  );
});

Deno.test("a vendor member removed while their socket is still reading its membership is closed 4403 once it is read", async () => {
  // the socket's instance reads PostgreSQL through the proxy; the removal is made on a second
  // instance that reaches it directly, and travels to the first on NATS
  await using setup = await clusterBehindProxy({ nats: true });
  const { cluster, proxy } = setup;
  await cluster.startInstance();
  const admin = cluster.instances[1]!.service.chat;
  const chat = await admin.createChat("cust-1", "vend-1");
  await admin.addVendorMember("vend-1", "agent-1", "agent");
  // an open socket of the member on the same instance shows when the removal has arrived there
  await using witness = await joinChat(cluster, "agent-1", chat.id);

  // the database has answered the membership read, but the answer is held on its way back
  proxy.stall("downstream");
  await using starting = await cluster.openChat("agent-1", chat.id);
  await proxy.held();
  await admin.removeVendorMember("vend-1", "agent-1");
  assert.equal((await within(witness.closed, 5_000, "the witness's close")).code, 4403);

  proxy.restore();
  assert.equal((await within(starting.closed, 5_000, "the starting socket's close")).code, 4403);
  assert.deepEqual(starting.pending("latest_chat"), [], "nothing of the chat was sent");
});

Deno.test("a member added to a vendor and removed again while their chats socket reads the vendor's chats is left without them", async () => {
  await using setup = await clusterBehindProxy({ nats: true });
  const { cluster, proxy } = setup;
  await cluster.startInstance();
  const admin = cluster.instances[1]!.service.chat;
  const ownChat = await admin.createChat("cust-1", "vend-1");
  const otherChat = await admin.createChat("cust-2", "vend-2");
  await admin.addVendorMember("vend-1", "agent-1", "agent");
  await using agentAll = await joinAllChats(cluster, "agent-1");
  // Sockets closed by an operator's disconnect published right after an event: NATS keeps one
  // publisher's order, so when one closes, the event before it has arrived.
  await using addWitness = await joinAllChats(cluster, "cust-8");
  await using removeWitness = await joinAllChats(cluster, "cust-9");
  const arrived = async (witness: typeof addWitness, userId: string) => {
    await admin.disconnectUser(userId, { moderator_id: "mod", reason: "witness" });
    assert.equal((await within(witness.closed, 5_000, `${userId}'s close`)).code, 4408);
  };

  // Every connection of the instance's pool is opened now (they open on demand): a connection
  // opened during the stall could not send the read before the removal is committed.
  const warmers = await Promise.all(
    Array.from({ length: 8 }, (_, index) => joinAllChats(cluster, `warmer-${index}`)),
  );
  for (const warmer of warmers) await warmer.close();
  // the database answers the read of agent-1's chats that the addition starts, but the
  // answer is held
  proxy.stall("downstream");
  await admin.addVendorMember("vend-2", "agent-1", "agent");
  await arrived(addWitness, "cust-8");
  await proxy.held();
  await admin.removeVendorMember("vend-2", "agent-1");
  await arrived(removeWitness, "cust-9");

  proxy.restore();
  const list = await agentAll.nextOfType("chats");
  assert.deepEqual(list.chats.map((item: Frame) => item.chat_id), [ownChat.id]);
  await refused(agentAll, { action: "unread_message", chat_id: otherChat.id }, "forbidden");
  // the other vendor's messages do not reach the socket; its own vendor's still do
  await using otherCustomer = await joinChat(cluster, "cust-2", otherChat.id, 1);
  await using ownCustomer = await joinChat(cluster, "cust-1", ownChat.id, 1);
  await sendText(otherCustomer, "vend-2", "not for agent-1");
  const sent = await sendText(ownCustomer, "vend-1", "for agent-1");
  assert.deepEqual((await agentAll.nextOfType("chat_message")).message, sent);
  assert.deepEqual(agentAll.pending("chat_message"), []);
});

Deno.test("with NATS away, the sending instance's sockets still get every message, and another instance's catch up in seq order once NATS is back", async () => {
  await using nats = await startNatsServer();
  await using cluster = await startCluster({
    instances: 2,
    env: { ...settings, NATS_URL: nats.url },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, 0);
  await using aliceTablet = await joinChat(cluster, "alice", chat.id, 0);
  await using acme = await joinChat(cluster, "acme", chat.id, 1);
  await sendText(alice, "acme", "m1");
  await messageWithSeq(acme, 1);
  await messageWithSeq(aliceTablet, 1);

  await nats.stop();
  const missed = 20;
  for (let n = 2; n <= missed + 1; n++) await sendText(alice, "acme", `m${n}`);
  for (let seq = 2; seq <= missed + 1; seq++) {
    assert.equal((await aliceTablet.nextOfType("chat_message")).message.seq, seq);
  }
  for (const instance of [0, 1]) {
    const { status, body } = await readyz(cluster.instances[instance]!.httpUrl);
    assert.equal(status, 503);
    assert.equal(body.reason, "not answering: nats");
  }

  const restartedAt = performance.now();
  await nats.start();
  const caughtUp: number[] = [];
  for (let n = 0; n < missed; n++) {
    caughtUp.push((await acme.nextOfType("chat_message", 15_000)).message.seq);
  }
  report(
    `NATS restarted: the other instance's socket had all ${missed} missed messages ${
      Math.round(performance.now() - restartedAt)
    } ms later`,
  );
  assert.deepEqual(caughtUp, Array.from({ length: missed }, (_, index) => index + 2));

  // both ways across instances again (so both have reconnected), and the store agrees with
  // what the socket saw
  await sendText(alice, "acme", "after");
  await messageWithSeq(acme, missed + 2);
  await sendText(acme, "alice", "reply");
  await messageWithSeq(alice, missed + 3);
  await messageWithSeq(acme, missed + 3);
  for (const instance of [0, 1]) {
    assert.equal(await metric(cluster, instance, "chat_nats_reconnects_total"), 1);
    assert.equal((await readyz(cluster.instances[instance]!.httpUrl)).status, 200);
  }
  assert.equal((await acme.request({ action: "load_latest_chat", after_seq: 0 })).type, "ack");
  const page = await acme.nextOfType("latest_chat");
  assert.deepEqual(
    page.messages.map((message: Frame) => message.seq),
    Array.from({ length: missed + 3 }, (_, index) => index + 1),
  );
  assert.deepEqual(acme.pending("chat_message"), [], "no message reached the socket twice");
});

Deno.test("an instance cut off from NATS while the others publish catches its sockets up from the store on reconnect", async () => {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, 0);
  await using acme = await joinChat(cluster, "acme", chat.id, 1);
  await sendText(alice, "acme", "m1");
  await messageWithSeq(acme, 1);

  // Only the second instance loses NATS: the first publishes on, and what it publishes
  // meanwhile never reaches the second through the bus.
  await proxy.cut();
  const missed = 10;
  for (let n = 2; n <= missed + 1; n++) await sendText(alice, "acme", `m${n}`);
  assert.equal((await readyz(cluster.instances[1]!.httpUrl)).status, 503);
  assert.equal((await readyz(cluster.instances[0]!.httpUrl)).status, 200);

  const restoredAt = performance.now();
  proxy.restore();
  for (let seq = 2; seq <= missed + 1; seq++) {
    assert.equal((await acme.nextOfType("chat_message", 15_000)).message.seq, seq);
  }
  report(
    `NATS cut to one instance: its socket had the ${missed} messages from the store ${
      Math.round(performance.now() - restoredAt)
    } ms after the cut was restored`,
  );
  assert.equal(await metric(cluster, 1, "chat_nats_reconnects_total"), 1);
  await sendText(alice, "acme", "after");
  await messageWithSeq(acme, missed + 2);
  assert.deepEqual(acme.pending("chat_message"), [], "no message reached the socket twice");
});

/**
 * A member removal, a ban, a new chat and an operator's disconnect made while one of two
 * instances is cut off from NATS.
 * Their user events are lost on the bus whichever side was cut off: the instance that made
 * them (`sockets: 0`: its publishes are dropped when the NATS client redials) or the instance
 * whose sockets they concern (`sockets: 1`: it was not subscribed meanwhile).
 */
async function accessChangedAcrossCut(sockets: 0 | 1) {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  const elsewhere = sockets === 0 ? 1 : 0;
  // made where the sockets will be: their events are handed out there at once, to no one,
  // and cannot reach a socket opened afterwards
  const here = cluster.instances[sockets]!.service.chat;
  await here.addVendorMember("vend-1", "agent-1", "agent");
  const chat = await here.createChat("cust-1", "vend-1");
  const spammersChat = await here.createChat("cust-2", "vend-1");
  await using agent = await joinChat(cluster, "agent-1", chat.id, sockets);
  await using agentAll = await joinAllChats(cluster, "agent-1", sockets);
  await using spammer = await joinChat(cluster, "cust-2", spammersChat.id, sockets);
  await using newcomerAll = await joinAllChats(cluster, "cust-3", sockets);
  await using disconnected = await joinAllChats(cluster, "cust-4", sockets);
  await using bystander = await joinChat(cluster, "cust-1", chat.id, sockets);
  await using bystanderAll = await joinAllChats(cluster, "cust-1", sockets);

  await proxy.cut();
  const changes = cluster.instances[elsewhere]!.service.chat;
  await changes.removeVendorMember("vend-1", "agent-1");
  await changes.banUser("cust-2", 0, { moderator_id: "mod", reason: "spam" });
  const created = await changes.createChat("cust-3", "vend-2");
  await changes.disconnectUser("cust-4", { moderator_id: "mod", reason: "support" });
  assert.equal(
    (await readyz(cluster.instances[1]!.httpUrl)).status,
    503,
    "the second instance is cut off",
  );
  // lost, not late: nothing has reached the sockets, which still answer (the store, asked
  // beside the read, refuses them what they ask to read)
  await refused(agent, { action: "unread_message" }, "forbidden");
  await refused(spammer, { action: "unread_message" }, "forbidden");
  assert.equal(await Promise.race([disconnected.closed.then(() => "closed"), "open"]), "open");

  const restoredAt = performance.now();
  proxy.restore();
  const closes = await within(
    Promise.all([agent.closed, spammer.closed, disconnected.closed]),
    15_000,
    "the removed member's, the banned user's and the disconnected user's sockets to close",
  );
  report(
    `user events lost while instance ${1 - sockets} was cut off: sockets checked against the ` +
      `store ${Math.round(performance.now() - restoredAt)} ms after the cut was restored`,
  );
  assert.deepEqual(closes.map((info) => info.code), [4403, 4403, 4408]);
  assert.deepEqual((await agentAll.nextOfType("chats", 15_000)).chats, []);
  await refused(agentAll, { action: "unread_message", chat_id: chat.id }, "forbidden");
  const list = await newcomerAll.nextOfType("chats", 15_000);
  assert.deepEqual(list.chats.map((item: Frame) => item.chat_id), [created.id]);
  // the new chat is followed from now on, across instances
  await using vendor = await joinChat(cluster, "vend-2", created.id, elsewhere);
  const sent = await sendText(vendor, "cust-3", "welcome");
  assert.deepEqual((await newcomerAll.nextOfType("chat_message")).message, sent);
  // sockets whose access did not change are left alone: open, and no list sent again
  await stillServes(bystander);
  await stillServes(bystanderAll, chat.id);
  assert.deepEqual(bystanderAll.pending("chats"), []);
}

Deno.test("a member removal, a ban, a new chat and a disconnect made on an instance cut off from NATS reach the other instance's sockets once it is back", async () => {
  await accessChangedAcrossCut(0);
});

Deno.test("an instance cut off from NATS while a member is removed, a user banned, a chat created and a user disconnected elsewhere checks its sockets against the store once it is back", async () => {
  await accessChangedAcrossCut(1);
});

Deno.test("an access check after a NATS reconnect that the store cannot answer runs again until it can", async () => {
  // the sockets' instance reaches PostgreSQL through one proxy; the other reaches NATS through
  // a second, and makes the change while cut off
  await using setup = await clusterBehindProxy({ nats: true });
  const { cluster, proxy: database } = setup;
  await using nats = startTcpProxy(TEST_NATS_URL);
  await cluster.startInstance({ NATS_URL: nats.url });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using spammer = await joinChat(cluster, "cust-1", chat.id, 0);

  await nats.cut();
  await cluster.instances[1]!.service.chat.banUser("cust-1", 0, {
    moderator_id: "mod",
    reason: "spam",
  });
  await database.cut();
  nats.restore();
  // the check ran while PostgreSQL was away: the socket stays as it was, to be checked again
  await untilMetric(cluster, 0, 'chat_access_checks_total{outcome="unanswered"}', 1);
  assert.equal(await Promise.race([spammer.closed.then(() => "closed"), "open"]), "open");

  database.restore();
  assert.equal(
    (await within(spammer.closed, 15_000, "the banned user's socket to close")).code,
    4403,
  );
  assert.equal(await metric(cluster, 0, 'chat_access_checks_total{outcome="closed"}'), 1);
});
