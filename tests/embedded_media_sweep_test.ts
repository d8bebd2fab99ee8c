import assert from "node:assert/strict";
import postgres from "postgres";
import { loadConfig } from "../config.ts";
import { startEmbeddedPostgres } from "../db/embedded.ts";
import { migrate } from "../db/migrate.ts";
import { createPostgresStore } from "../db/postgres_store.ts";
import { startService } from "../main.ts";
import { createPostgresMediaStore } from "../media/postgres_media_store.ts";
import { sample } from "./support/service_process.ts";

// `deno task dev`'s embedded PGlite runs one connection's transaction at a time: what the
// service does inside one must not wait for another connection of its own.

const limits = { image: 10_000_000, audio: 10_000_000, video: 10_000_000 };
const image = await Deno.readFile(new URL("./fixtures/image.png", import.meta.url));

Deno.test("on the embedded database, the sweep of unsent media at the start deletes an expired upload and its blob", async () => {
  const parent = await Deno.makeTempDir();
  const dataDir = `${parent}/pgdata`;
  try {
    // an upload a day past the retention, never sent, left by an earlier run
    const embedded = await startEmbeddedPostgres(dataDir);
    const sql = postgres(embedded.url, { max: 4, onnotice: () => {} });
    try {
      await migrate(sql);
      const store = createPostgresStore(sql);
      const media = createPostgresMediaStore(sql, { copy: false });
      const chat = (await store.createChat("c", "v")).chat;
      const blob = await media.put(image, { kind: "image", limits });
      const row = await store.createMedia({
        chat_id: chat.id,
        uploader_id: chat.user_id,
        media_type: "image",
        sha256: blob.sha256,
        mime_type: blob.mime,
        size: blob.size,
      });
      await sql`update media set created_at = now() - interval '2 days' where id = ${row.id}`;
      await media.close();
    } finally {
      await sql.end();
      await embedded.close();
    }

    const service = await startService(loadConfig({
      PORT: "0",
      HOST: "127.0.0.1",
      GRPC_ENABLED: "0",
      JWT_SECRET: "s".repeat(32),
      DATA_DIR: dataDir,
      LOG_LEVEL: "error",
    }));
    try {
      const swept = async () => {
        const response = await fetch(`http://127.0.0.1:${service.port}/metrics`);
        const text = await response.text();
        return {
          media: sample(text, 'chat_media_unsent_swept_total{deleted="media"}'),
          blobs: sample(text, 'chat_media_unsent_swept_total{deleted="blobs"}'),
        };
      };
      // the sweep runs at the start; a failed one tries again only much later
      const deadline = Date.now() + 30_000;
      while ((await swept()).blobs < 1 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.deepEqual(await swept(), { media: 1, blobs: 1 });
    } finally {
      await service.close();
    }
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
