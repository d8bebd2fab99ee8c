import assert from "node:assert/strict";
import { healthzUrl } from "./healthcheck.ts";

Deno.test("the HEALTHCHECK asks loopback when HOST is every address, else the address HOST names", () => {
  assert.equal(healthzUrl({}), "http://127.0.0.1:8000/healthz");
  assert.equal(healthzUrl({ HOST: "", PORT: "" }), "http://127.0.0.1:8000/healthz");
  assert.equal(healthzUrl({ HOST: "0.0.0.0", PORT: "9000" }), "http://127.0.0.1:9000/healthz");
  assert.equal(healthzUrl({ HOST: "::", PORT: "9000" }), "http://[::1]:9000/healthz");
  assert.equal(healthzUrl({ HOST: "0:0::0", PORT: "9000" }), "http://[::1]:9000/healthz");
  assert.equal(healthzUrl({ HOST: "10.1.2.3", PORT: "9000" }), "http://10.1.2.3:9000/healthz");
  assert.equal(healthzUrl({ HOST: "fd00::5", PORT: "9000" }), "http://[fd00::5]:9000/healthz");
  assert.equal(healthzUrl({ HOST: "chat-1", PORT: "9000" }), "http://chat-1:9000/healthz");
});
