import assert from "node:assert/strict";
import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import type { NewMessage } from "../chat/ports.ts";
import { freshDatabase } from "../tests/support/database.ts";
import { within } from "../tests/support/wait.ts";
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

Deno.test("a batch the database fails to break a deadlock is tried again message by message, not failed", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  const other = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    const { chat } = await store.createChat("alice", "acme");
    // Another writer (an instance, say) has written alice's client_id "k" and not committed.
    // The batch takes the chat's row, then waits on that message; the other then wants the
    // chat's row: each waits on the other. The other looks for deadlocks later, so the
    // database fails the batch.
    const transaction = await other.reserve();
    try {
      await transaction`begin`;
      await transaction`set local deadlock_timeout = '10s'`;
      await transaction`
        insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type,
                              content, client_id)
        values (${chat.id}, 1000, 'alice', 'customer', 'acme', 'text', 'theirs', 'k')`;
      const sent = store.insertMessage({
        chat_id: chat.id,
        sender_id: "alice",
        sender_side: "customer",
        receiver_id: "acme",
        media_type: "text",
        content: "mine",
        media_id: null,
        client_id: "k",
      });
      sent.catch(() => {}); // awaited below
      await within(waitForLockWait(sql), 5_000, "the batch to wait for the other's message");
      await transaction`update chats set updated_at = now() where id = ${chat.id}`;
      await transaction`commit`;
      const result = await within(sent, 10_000, "the message");
      assert.equal(result.duplicate, true, "client_id k was written by the other");
      assert.equal(result.message.content, "theirs");
    } finally {
      transaction.release();
    }
  } finally {
    await other.end();
    await sql.end();
  }
});

/** Resolves once some session of the database waits for a row lock. */
async function waitForLockWait(sql: postgres.Sql): Promise<void> {
  for (;;) {
    const [waiting] = await sql`
      select 1 from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`;
    if (waiting) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
