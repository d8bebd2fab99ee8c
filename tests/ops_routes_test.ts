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
