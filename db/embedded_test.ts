import assert from "node:assert/strict";
import { EmbeddedDatabaseInUse, startEmbeddedPostgres } from "./embedded.ts";

Deno.test("an embedded database directory is opened by one holder at a time, and free again once closed", async () => {
  const parent = await Deno.makeTempDir();
  const dataDir = `${parent}/pgdata`;
  try {
    const first = await startEmbeddedPostgres(dataDir);
    try {
      await assert.rejects(startEmbeddedPostgres(dataDir), EmbeddedDatabaseInUse);
    } finally {
      await first.close();
    }
    const again = await startEmbeddedPostgres(dataDir);
    await again.close();
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
