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
  assert.ok(result.latencyMs.p90 >= 500, `delivery ${JSON.stringify(result.latencyMs)}`);
  assert.ok(result.ackMs.p90 >= 500, `ack ${JSON.stringify(result.ackMs)}`);
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
    // as slow as reading /proc on a busy box can be
    readCpu: () => new Promise((resolve) => setTimeout(() => resolve(reading), 300)),
  });
  assert.equal(result.lost, 0);
  assert.ok(result.cpu, "no CPU figures");
  // sending held up for the reading would leave the first 30 measured messages up to 300 ms late
  assert.ok(result.latencyMs.p90 < 100, `delivery ${JSON.stringify(result.latencyMs)}`);
});
