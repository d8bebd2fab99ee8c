/**
 * The client library on `/v1/ws/chats/` across a lost connection, against the real service:
 * what it missed in the chats it knew comes, however far down the list they went.
 */
import assert from "node:assert/strict";
import { openClient } from "./support/client_events.ts";
import { startCluster } from "./support/service.ts";
import { seedMessages } from "./support/steps.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";

Deno.test("after a reconnect, messages missed in a known chat pushed off the first chats page come", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const watched = await service.createChat("cust-0", "vend-1");
  const others = [];
  for (let n = 1; n <= 51; n++) others.push(await service.createChat(`cust-${n}`, "vend-1"));
  await seedMessages(cluster, watched.id, { from: "cust-0", to: "vend-1", count: 1 });
  await using proxy = startTcpProxy({ hostname: "127.0.0.1", port: cluster.main.service.port });
  await using vendor = await openClient(cluster, "vend-1", {
    url: `http://127.0.0.1:${proxy.port}`,
  });
  const first = await vendor.events.next("chats");
  assert.ok(first.chats.some((row) => row.chat_id === watched.id));

  await proxy.cut();
  await vendor.events.next("status", (status) => status.state === "reconnecting");
  await seedMessages(cluster, watched.id, { from: "cust-0", to: "vend-1", count: 1 });
  // more chats than a page (50) have newer activity: the watched chat is off the first page
  for (const [index, chat] of others.entries()) {
    await seedMessages(cluster, chat.id, { from: `cust-${index + 1}`, to: "vend-1", count: 1 });
  }
  proxy.restore();
  const second = await vendor.events.next("chats");
  assert.ok(!second.chats.some((row) => row.chat_id === watched.id));

  assert.deepEqual(await vendor.events.seqs(watched.id, 1), [2]);
});
