import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
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

Deno.test("the HEALTHCHECK asks the port the service listens on, however PORT is written", () => {
  const settings = { JWT_SECRET: "0123456789abcdef0123456789abcdef", GRPC_ENABLED: "0" };
  // blanks around it (a quoted YAML value, an env file), a decimal point: the service takes them
  for (const written of ["9000 ", " 9000", "9000.0", "9000\n"]) {
    const { PORT } = loadConfig({ ...settings, PORT: written });
    assert.equal(PORT, 9000, JSON.stringify(written));
    assert.equal(
      healthzUrl({ HOST: "0.0.0.0", PORT: written }),
      "http://127.0.0.1:9000/healthz",
      JSON.stringify(written),
    );
  }
});
