/**
 * A `messages_read` from an instance that predates `up_to_marked` says the seq asked, maybe far
 * past the last message (a client's "mark all read"): a message sent after it is not read, and
 * an edit of that message must not go out marked read by it. The service against a real
 * PostgreSQL store; the old instance's mark is written to the store and published as it did.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createMemoryBus } from "../bus/memory_bus.ts";
import { createSubjects } from "../bus/subjects.ts";
import { createChatFeed } from "../chat/feed.ts";
import type { MediaPort } from "../chat/ports.ts";
import { createChatService } from "../chat/service.ts";
import type { Message } from "../chat/types.ts";
import { createPostgresStore } from "../db/postgres_store.ts";
import { freshDatabase } from "./support/database.ts";
import { createWatch } from "./support/wait.ts";

Deno.test("an edit of a message sent after an old instance's messages_read past it still shows it unread", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    const { chat } = await store.createChat("alice", "acme");
    const feed = createChatFeed({ bus: createMemoryBus(), store, subjects: createSubjects("t") });
    const service = createChatService({
      store,
      events: feed,
      now: Date.now,
      media: {} as MediaPort, // text only
    });
    const edits: Message[] = [];
    const watch = createWatch();
    const leave = await feed.join([chat.id], ({ envelope: { frame } }) => {
      if (frame.type === "message_edited") edits.push(frame.message);
      watch.changed();
    });
    try {
      const acme = { user_id: "acme", membership: await service.membership("acme", chat.id) };
      const send = (content: string) =>
        service.sendMessage(acme, {
          receiver_id: "alice",
          media_type: "text",
          content,
          media: null,
          client_id: null,
        });
      await send("first");
      // alice marks all read on an instance of the version before up_to_marked
      const marked = await store.markReadUpTo(chat.id, "customer", 1_000, "alice");
      assert.equal(marked.count, 1);
      feed.publishChat(chat.id, {
        chat: { user_id: chat.user_id, vendor_id: chat.vendor_id },
        audience: { to: "all" },
        frame: {
          type: "messages_read",
          chat_id: chat.id,
          reader_id: "alice",
          up_to_seq: 1_000,
          count: marked.count,
          read_at: marked.read_at,
        },
        sent_at: Date.now(),
      });
      const { message: second } = await send("second");
      assert.equal(second.is_read, false);
      await service.editMessage({ userId: "acme", chatId: chat.id }, second.id, "second, edited");
      const edit = await watch.until(() => edits.at(-1), "the message_edited");
      assert.equal(edit.content, "second, edited");
      assert.equal(edit.is_read, false, "sent after the mark: not read");
      assert.equal(edit.read_at, null);
    } finally {
      leave();
      feed.close();
    }
  } finally {
    await sql.end();
  }
});
