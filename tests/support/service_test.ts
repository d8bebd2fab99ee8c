import assert from "node:assert/strict";
import { closeThroughDatabaseProxy, startCluster } from "./service.ts";
import { startTcpProxy } from "./tcp_proxy.ts";

Deno.test("closeThroughDatabaseProxy() closes a cluster whose pools still queue calls of a slow database: every call settled, no reconnect left behind", async () => {
  const cluster = await startCluster({
    instances: 0,
    nats: false,
    env: { SHUTDOWN_TIMEOUT: "1" },
  });
  const proxy = startTcpProxy(cluster.databaseUrl);
  const { service } = await cluster.startInstance({ DATABASE_URL: proxy.url });
  // a backlog as the instance closes: many more calls than the pool has connections, each slow
  proxy.delayMs = 100;
  let settled = 0;
  const calls = Array.from(
    { length: 100 },
    (_, n) =>
      service.chat.createChat(`customer-${n}`, "acme").catch(() => {}).finally(() => settled++),
  );
  await closeThroughDatabaseProxy(cluster, proxy);
  assert.equal(settled, calls.length, "calls unsettled once the cluster is closed");
});
