/**
 * A NATS that stops answering without closing the connection (a partition, a hung server) is
 * not noticed by its client for up to a minute. A shutdown meeting one must still end within
 * SHUTDOWN_TIMEOUT, and record the drain that got no answer as an outage for the next start.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { freshDatabase } from "./support/database.ts";
import { startNatsServer } from "./support/nats_server.ts";
import {
  ownShutdownMs,
  serviceEnvironment,
  startServiceProcess,
} from "./support/service_process.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import { within } from "./support/wait.ts";

Deno.test("with MEDIA_BACKEND=nats and NATS stalled, SIGTERM exits 0 within SHUTDOWN_TIMEOUT and records the unanswered drain as an outage", async () => {
  await using database = await freshDatabase();
  const storeDir = await Deno.makeTempDir();
  try {
    await using nats = await startNatsServer(["-js", "-sd", storeDir]);
    await using proxy = startTcpProxy(nats.url);
    const timeoutSeconds = 2;
    const env: Record<string, string> = {
      ...serviceEnvironment({
        databaseUrl: database.url,
        natsUrl: proxy.url,
      }),
      SHUTDOWN_TIMEOUT: String(timeoutSeconds),
      MEDIA_BACKEND: "nats",
      MEDIA_NATS_BUCKET: `stalled_${crypto.randomUUID().slice(0, 8)}`,
    };
    await using service = await startServiceProcess(env);
    const { instance_id: instanceId } = service.logs().find((line) =>
      line.message === "listening"
    )!;

    // both connections (the bus's and the media store's) stay open, and nothing gets through
    proxy.stall();
    const signalledAt = performance.now();
    service.kill("SIGTERM");
    const status = await within(service.status, (timeoutSeconds + 4) * 1000, "the exit");
    const elapsedMs = performance.now() - signalledAt;
    assert.equal(status.code, 0, service.logs().map((line) => line.message).join("\n"));
    assert.ok(elapsedMs < timeoutSeconds * 1000 + 300, `exited after ${Math.round(elapsedMs)} ms`);
    const ownMs = ownShutdownMs(service);
    assert.ok(ownMs < timeoutSeconds * 1000, `its own shutdown took ${ownMs} ms`);
    assert.ok(service.logs().some((line) => line.message === "stopped"));

    const sql = postgres(database.url, { max: 1, onnotice: () => {} });
    try {
      const outages = await sql`select instance_id from bus_outages`;
      assert.deepEqual(outages.map((row) => row.instance_id), [instanceId]);
    } finally {
      await sql.end();
    }
    proxy.restore();
  } finally {
    await Deno.remove(storeDir, { recursive: true });
  }
});
