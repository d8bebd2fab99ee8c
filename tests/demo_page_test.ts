import assert from "node:assert/strict";
import { startCluster } from "./support/service.ts";

Deno.test("the demo page is not served unless DEMO_PAGE is on", async () => {
  await using cluster = await startCluster({ nats: false });
  for (const path of ["/", "/demo/app.js", "/demo/style.css"]) {
    const response = await fetch(`${cluster.main.httpUrl}${path}`);
    await response.body?.cancel();
    assert.equal(response.status, 404, path);
  }
});

Deno.test("with DEMO_PAGE on, /, its stylesheet and its bundled script are served with a CSP", async () => {
  await using cluster = await startCluster({ nats: false, env: { DEMO_PAGE: "1" } });
  const get = async (path: string) => {
    const response = await fetch(`${cluster.main.httpUrl}${path}`);
    return { response, text: await response.text() };
  };
  const page = await get("/");
  assert.equal(page.response.status, 200);
  assert.match(page.response.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(page.response.headers.get("content-security-policy") ?? "", /default-src 'self'/);
  // another site may not frame the page to click its composer for a user (clickjacking)
  assert.match(
    page.response.headers.get("content-security-policy") ?? "",
    /frame-ancestors 'none'/,
  );
  assert.match(page.text, /<script type="module" src="\/demo\/app.js">/);
  const style = await get("/demo/style.css");
  assert.match(style.response.headers.get("content-type") ?? "", /^text\/css/);
  const script = await get("/demo/app.js");
  assert.equal(script.response.status, 200);
  assert.match(script.response.headers.get("content-type") ?? "", /^text\/javascript/);
  assert.ok(!/^import /m.test(script.text), "one file: nothing left to import");
  assert.match(script.text, /load_latest_chat/, "the client library is in it");
  const post = await fetch(`${cluster.main.httpUrl}/`, { method: "POST" });
  await post.body?.cancel();
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
});
