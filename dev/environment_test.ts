import assert from "node:assert/strict";
import { overDefaults } from "./environment.ts";

Deno.test("a variable set but empty keeps the development default, as if unset", () => {
  const env = overDefaults(
    { JWT_SECRET: "generated", GRPC_ADMIN_TOKEN: "generated too", DEMO_PAGE: "1" },
    { JWT_SECRET: "", GRPC_ADMIN_TOKEN: "", PORT: "8124", LOG_LEVEL: "" },
  );
  assert.deepEqual(env, {
    JWT_SECRET: "generated",
    GRPC_ADMIN_TOKEN: "generated too",
    DEMO_PAGE: "1",
    PORT: "8124",
  });
});

Deno.test("a variable set to a value replaces the development default", () => {
  const env = overDefaults({ JWT_SECRET: "generated", DEMO_PAGE: "1" }, { DEMO_PAGE: "0" });
  assert.deepEqual(env, { JWT_SECRET: "generated", DEMO_PAGE: "0" });
});
