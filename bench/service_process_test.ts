import assert from "node:assert/strict";
import { startServiceProcess } from "./service_process.ts";

Deno.test("startServiceProcess() fails at once, with the exit code, when the service stops while starting", async () => {
  const started = Date.now();
  await assert.rejects(
    startServiceProcess({ DATABASE_URL: "mysql://127.0.0.1/chat", JWT_SECRET: "x".repeat(32) }),
    /the service exited with code 78 before it was ready/,
  );
  // it waited out its whole 30 s before, whatever the service had said
  assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
});
