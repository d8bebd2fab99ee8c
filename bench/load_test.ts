import assert from "node:assert/strict";
import { startCluster } from "../tests/support/service.ts";
import { runLoad } from "./load.ts";
import { createChats } from "./setup.ts";

/** Holds this process's event loop for `ms`, as a long garbage collection or a busy callback would. */
function blockEventLoop(ms: number) {
  const until = performance.now() + ms;
  while (performance.now() < until) Math.sqrt(Math.random());
}

Deno.test("runLoad()'s open loop times a message from when it was due, not from when it went out late", async () => {
  await using cluster = await startCluster();
  const chats = await createChats(cluster.databaseUrl, 2, `late${Date.now()}`);
  // half a second into the measured two the load generator stalls for a second: the hundred
  // messages due meanwhile go out together afterwards, each late by up to a second
  const stall = setTimeout(() => blockEventLoop(1000), 200 + 500);
  const result = await runLoad({
    wsBase: cluster.main.wsUrl,
    secret: cluster.secret,
    chats,
    seconds: 2,
    warmupSeconds: 0.2,
    rate: 100,
    markRead: false,
  });
  clearTimeout(stall);
  assert.equal(result.lost, 0);
  // a quarter of the measured messages were due 500 ms or more before they went out (timed
  // from going out, the burst's own queueing shows, about 150 ms)
  assert.ok((result.latencyMs.p90 ?? 0) >= 500, `delivery ${JSON.stringify(result.latencyMs)}`);
  assert.ok((result.ackMs.p90 ?? 0) >= 500, `ack ${JSON.stringify(result.ackMs)}`);
});

Deno.test("runLoad()'s open loop keeps its schedule while the CPU of the measured seconds is read", async () => {
  await using cluster = await startCluster();
  const chats = await createChats(cluster.databaseUrl, 2, `cpu${Date.now()}`);
  const reading = { service: 1, postgres: 1, loadGenerator: 1, machineBusy: 1, machineTotal: 2 };
  const result = await runLoad({
    wsBase: cluster.main.wsUrl,
    secret: cluster.secret,
    chats,
    seconds: 1,
    warmupSeconds: 0.2,
    rate: 100,
    markRead: false,
    // slower than reading /proc on a busy box is, so that a hold-up stands far above the
    // delivery times of a test machine under load
    readCpu: () => new Promise((resolve) => setTimeout(() => resolve(reading), 1_500)),
  });
  assert.equal(result.lost, 0);
  assert.ok(result.cpu, "no CPU figures");
  // sending held up for the reading would leave every measured message up to 1.5 s late
  assert.ok(
    (result.latencyMs.p90 ?? Infinity) < 750,
    `delivery ${JSON.stringify(result.latencyMs)}`,
  );
});

/** A server that opens every chat socket with an empty `latest_chat`, then answers nothing. */
function silentServer() {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => socket.send(JSON.stringify({ type: "latest_chat", messages: [] }));
    return response;
  });
}

Deno.test("runLoad()'s closed loop ends on time when the service stops answering, its sends counted as errors", async () => {
  await using server = silentServer();
  const chat = { id: crypto.randomUUID(), customer: "customer", vendor: "vendor" };
  const run = runLoad({
    wsBase: `ws://127.0.0.1:${server.addr.port}`,
    secret: "a".repeat(64),
    chats: [chat],
    seconds: 0.5,
    warmupSeconds: 0,
    concurrency: 4,
    markRead: false,
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([
    run,
    // half a second of load, then at most ten of waiting for the last answers
    new Promise<"hung">((resolve) => timer = setTimeout(() => resolve("hung"), 15_000)),
  ]);
  clearTimeout(timer);
  assert.notEqual(result, "hung", "runLoad() still running 15 s after a 0.5 s run");
  if (result === "hung") return;
  assert.equal(result.sent, 4);
  assert.equal(result.stored, 0);
  assert.equal(result.errors, 4);
});

Deno.test("runLoad()'s closed loop sends nothing more once the service has closed every socket", async () => {
  // as a service that went away: each socket is closed as soon as it has opened
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "latest_chat", messages: [] }));
      socket.close(1011, "gone");
    };
    return response;
  });
  const result = await runLoad({
    wsBase: `ws://127.0.0.1:${server.addr.port}`,
    secret: "a".repeat(64),
    chats: [{ id: crypto.randomUUID(), customer: "customer", vendor: "vendor" }],
    seconds: 0.5,
    warmupSeconds: 0,
    concurrency: 4,
    markRead: false,
  });
  // sends refused at once by a closed socket, made again at once, would be the loop's whole
  // half second (and hold every timer off): hundreds of thousands of errors
  assert.ok(result.sent <= 8, `sent ${result.sent}`);
  assert.equal(result.errors, result.sent);
});

Deno.test("runLoad()'s open loop sends every message due in its seconds, though it stalled over their end", async () => {
  await using cluster = await startCluster();
  const chats = await createChats(cluster.databaseUrl, 2, `end${Date.now()}`);
  // 1.2 s of schedule at 100/s (after the sockets open); the load generator stalls for 0.6 s
  // from a second after this, over the end
  const stall = setTimeout(() => blockEventLoop(600), 1000);
  const result = await runLoad({
    wsBase: cluster.main.wsUrl,
    secret: cluster.secret,
    chats,
    seconds: 1,
    warmupSeconds: 0.2,
    rate: 100,
    markRead: false,
  });
  clearTimeout(stall);
  // those due in the stall before the end are the run's latest: left out, they would be missing
  // from the rate and their wait from the latencies
  assert.ok(result.sent >= 119, `sent ${result.sent} of 120`);
  assert.equal(result.lost, 0);
  assert.ok((result.latencyMs.max ?? 0) >= 400, `delivery ${JSON.stringify(result.latencyMs)}`);
});

/**
 * A stand-in for the service: each chat socket gets an empty `latest_chat`; each `send_message`
 * takes the next seq and goes to `answer`, with `deliver` to send a message of it (that seq, or
 * another) to every socket and `reply` to answer the sender.
 */
function scriptedService(
  answer: (
    seq: number,
    deliver: (seq: number) => void,
    reply: (frame: Record<string, unknown>) => void,
  ) => void,
) {
  const sockets: WebSocket[] = [];
  let seq = 0;
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    sockets.push(socket);
    socket.onopen = () => socket.send(JSON.stringify({ type: "latest_chat", messages: [] }));
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.action !== "send_message") return;
      const sender_id = frame.receiver_id === "vendor" ? "customer" : "vendor";
      const deliver = (seq: number) => {
        const message = { id: `id${seq}`, seq, sender_id, client_id: frame.client_id };
        for (const each of sockets) each.send(JSON.stringify({ type: "chat_message", message }));
      };
      const reply = (answer: Record<string, unknown>) =>
        socket.send(JSON.stringify({ ...answer, request_id: frame.request_id }));
      answer(++seq, deliver, reply);
    };
    return response;
  });
}

Deno.test("runLoad() waits for an acknowledged message still on its way, though an errored one was delivered", async () => {
  // the first send is stored and delivered but answered with an error (as a send can be); the
  // second is acknowledged at once and delivered a second later
  await using server = scriptedService((seq, deliver, reply) => {
    if (seq === 1) {
      deliver(seq);
      reply({ type: "error", code: "unavailable" });
    } else {
      reply({ type: "ack" });
      setTimeout(() => deliver(seq), 1000);
    }
  });
  const result = await runLoad({
    wsBase: `ws://127.0.0.1:${server.addr.port}`,
    secret: "a".repeat(64),
    chats: [{ id: crypto.randomUUID(), customer: "customer", vendor: "vendor" }],
    seconds: 1,
    warmupSeconds: 0,
    rate: 2,
    markRead: false,
  });
  assert.deepEqual(
    [result.sent, result.stored, result.errors, result.delivered, result.lost],
    [2, 1, 1, 2, 0],
    "sent, stored, errors, delivered, lost",
  );
});

Deno.test("runLoad() counts a message the service stored twice, under two seqs, as a duplicate", async () => {
  // the second send is delivered twice: as seq 2 and again as seq 3
  await using server = scriptedService((seq, deliver, reply) => {
    deliver(seq);
    if (seq === 2) deliver(3);
    reply({ type: "ack" });
  });
  const result = await runLoad({
    wsBase: `ws://127.0.0.1:${server.addr.port}`,
    secret: "a".repeat(64),
    chats: [{ id: crypto.randomUUID(), customer: "customer", vendor: "vendor" }],
    seconds: 1,
    warmupSeconds: 0,
    rate: 2,
    markRead: false,
  });
  assert.deepEqual(
    [result.sent, result.stored, result.delivered, result.duplicates, result.latencyMs.count],
    [2, 2, 2, 1, 2],
    "sent, stored, delivered, duplicates, timed",
  );
});
