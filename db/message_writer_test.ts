import assert from "node:assert/strict";
import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import type { NewMessage } from "../chat/ports.ts";
import { freshDatabase } from "../tests/support/database.ts";
import { createPostgresStore } from "./postgres_store.ts";

Deno.test("a message the database refuses fails alone, not the group commit it was written with", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    const { chat } = await store.createChat("alice", "acme");
    const message = (content: string): NewMessage => ({
      chat_id: chat.id,
      sender_id: "alice",
      sender_side: "customer",
      receiver_id: "acme",
      media_type: "text",
      content,
      media_id: null,
      client_id: null,
    });
    // the first starts a batch; the other two wait for it and are written together
    const results = await Promise.allSettled([
      store.insertMessage(message("before")),
      store.insertMessage(message("nul \u0000 inside")),
      store.insertMessage(message("after")),
    ]);
    const [before, refused, after] = results;
    assert.equal(before.status, "fulfilled");
    assert.equal(after.status, "fulfilled");
    assert.equal(refused.status, "rejected");
    assert.ok(refused.reason instanceof ChatError);
    assert.equal(refused.reason.code, "invalid_payload");
    const page = await store.history(chat.id, { limit: 10 });
    assert.deepEqual(page.items.map((stored) => [stored.seq, stored.content]), [
      [1, "before"],
      [2, "after"],
    ]);
  } finally {
    await sql.end();
  }
});
