/**
 * A client that never answers the close frame (a phone that lost its network, a half-open TCP
 * connection) is common at any moment, and lingers until its client closes the connection
 * (Deno's idle timeout pings open sockets only, not closing ones). A shutdown
 * must not wait for it until its deadline: the NATS drain that comes after the sockets needs
 * its time, and a drain cut short by the deadline is recorded as a NATS outage.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { configureLogging } from "../observability/log.ts";
import { openRawWebSocket } from "./support/raw_websocket.ts";
import { startCluster } from "./support/service.ts";

const SHUTDOWN_TIMEOUT = 6;

Deno.test("a client that never answers the close does not hold the shutdown: it gets 1012, NATS is drained and no outage is recorded", async () => {
  const lines: string[] = [];
  await using _logging = await configureLogging("info", {
    write: (bytes) => lines.push(new TextDecoder().decode(bytes)),
  });
  await using cluster = await startCluster({ env: { SHUTDOWN_TIMEOUT: String(SHUTDOWN_TIMEOUT) } });
  const token = await cluster.token("silent");
  // reads what the server sends, and never answers its close frame
  await using silent = await openRawWebSocket(
    cluster.main.service.port,
    `/v1/ws/chats/?token=${token}`,
  );
  await silent.received((text) => text.startsWith('{"type":"chats"'), "the chats frame");

  const started = performance.now();
  await cluster.main.service.close();
  const tookMs = performance.now() - started;

  assert.equal(await silent.closed(), 1012, "the client was told to reconnect elsewhere");
  const warnings = lines.filter((line) => /did not finish before the deadline/.test(line));
  assert.deepEqual(warnings, [], "no step was cut by the deadline");
  // well before the deadline (the timeout less a second), which no step reached
  assert.ok(tookMs < (SHUTDOWN_TIMEOUT - 1) * 1000 / 2, `the shutdown took ${tookMs} ms`);
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const outages = await sql`select instance_id from bus_outages`;
    assert.equal(outages.length, 0, "a shutdown with NATS healthy records no outage");
  } finally {
    await sql.end();
  }
});
