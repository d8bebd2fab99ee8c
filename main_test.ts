import assert from "node:assert/strict";
import { loadConfig } from "./config.ts";
import { startService } from "./main.ts";
import { ListenFailure } from "./start/listen_failure.ts";
import { freshDatabase } from "./tests/support/database.ts";

// Deno's leak sanitizers (on in deno.json) fail these tests if a failed start leaves a timer, an
// async operation or a connection behind.

Deno.test("a start whose HTTP port is in use rejects naming PORT, and leaves no timer or connection behind", async () => {
  await using database = await freshDatabase();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const config = loadConfig({
    PORT: String(taken.addr.port),
    HOST: "127.0.0.1",
    GRPC_ENABLED: "0",
    DATABASE_URL: database.url,
    DATABASE_POOL_SIZE: "2",
    JWT_SECRET: crypto.randomUUID() + crypto.randomUUID(),
  });
  await assert.rejects(startService(config), (error) => {
    assert.ok(error instanceof ListenFailure, String(error));
    assert.equal(error.setting, "PORT");
    return true;
  });
});
