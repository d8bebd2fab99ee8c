import assert from "node:assert/strict";
import { startCluster } from "./support/service.ts";

// /healthz, /readyz and /metrics are read-only: GET and HEAD, anything else 405 with Allow.

Deno.test("the health and metrics routes answer GET and HEAD, and 405 with Allow to other methods", async () => {
  await using cluster = await startCluster({ nats: false });
  for (const path of ["/healthz", "/readyz", "/metrics"]) {
    const url = `${cluster.main.httpUrl}${path}`;
    const get = await fetch(url);
    assert.equal(get.status, 200, `GET ${path}`);
    assert.ok((await get.text()).length > 0, `GET ${path} has a body`);
    const head = await fetch(url, { method: "HEAD" });
    assert.equal(head.status, 200, `HEAD ${path}`);
    assert.equal(await head.text(), "", `HEAD ${path} has no body`);
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      const refused = await fetch(url, { method, body: method === "DELETE" ? null : "x" });
      await refused.body?.cancel();
      assert.equal(refused.status, 405, `${method} ${path}`);
      assert.equal(refused.headers.get("allow"), "GET, HEAD", `${method} ${path}`);
    }
  }
});

Deno.test("/metrics shows the series an alert watches at 0 from the start, not only from their first increase", async () => {
  // A series that first appears at 5 is, to Prometheus, one that never rose: `increase()` and
  // `rate()` see nothing of a first burst of database errors or of sockets closed for a ban.
  await using cluster = await startCluster({ nats: false });
  const response = await fetch(`${cluster.main.httpUrl}/metrics`);
  const lines = new Set((await response.text()).split("\n"));
  for (
    const series of [
      'chat_db_query_duration_seconds_count{operation="insertMessage",outcome="error"}',
      'chat_db_query_duration_seconds_count{operation="membership",outcome="error"}',
      'chat_ws_errors_total{code="unavailable"}',
      'chat_ws_errors_total{code="internal"}',
      'chat_access_checks_total{outcome="closed"}',
      'chat_sanction_screens_total{outcome="closed"}',
      'chat_media_rate_limited_total{route="upload",limit="rate",via="http"}',
      'chat_ws_open_sockets{endpoint="chat"}',
      'chat_ws_open_sockets{endpoint="chats"}',
    ]
  ) {
    assert.ok(lines.has(`${series} 0`), `${series} is not at 0 before anything happened`);
  }
});
