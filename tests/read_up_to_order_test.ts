/**
 * A `read_up_to` that marks a message whose own broadcast is still on its way: the service
 * against a real PostgreSQL store whose unread read (the snapshot a send waits for before it
 * broadcasts) is held back.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createMemoryBus } from "../bus/memory_bus.ts";
import { createSubjects } from "../bus/subjects.ts";
import { createChatFeed } from "../chat/feed.ts";
import type { ChatStore, MediaPort } from "../chat/ports.ts";
import { createChatService } from "../chat/service.ts";
import { createPostgresStore } from "../db/postgres_store.ts";
import { freshDatabase } from "./support/database.ts";
import { createWatch } from "./support/wait.ts";

Deno.test("a messages_read that marks a message still being broadcast reaches sockets after it, and says how far it marked", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  try {
    const real = createPostgresStore(sql);
    const { chat } = await real.createChat("alice", "acme");
    const unreadReached = Promise.withResolvers<void>();
    const unreadRelease = Promise.withResolvers<void>();
    const store: ChatStore = {
      ...real,
      // no snapshot from the writer: the service reads it, after the message was stored
      insertMessage: async (message) => ({
        ...(await real.insertMessage(message)),
        receiver_unread: null,
      }),
      async unread(...args) {
        unreadReached.resolve();
        await unreadRelease.promise;
        return await real.unread(...args);
      },
    };
    const feed = createChatFeed({ bus: createMemoryBus(), store, subjects: createSubjects("t") });
    const service = createChatService({
      store,
      events: feed,
      now: Date.now,
      media: {} as MediaPort, // text only
    });
    const events: string[] = [];
    const watch = createWatch();
    const leave = await feed.join([chat.id], ({ envelope: { frame } }) => {
      if (frame.type === "chat_message") {
        events.push(`chat_message#${frame.message.seq} is_read=${frame.message.is_read}`);
      } else if (frame.type === "messages_read") {
        events.push(`messages_read up to #${frame.up_to_seq} count=${frame.count}`);
      } else events.push(frame.type);
      watch.changed();
    });
    try {
      const alice = { user_id: "alice", membership: await service.membership("alice", chat.id) };
      const acme = { user_id: "acme", membership: await service.membership("acme", chat.id) };
      const sending = service.sendMessage(alice, {
        receiver_id: "acme",
        media_type: "text",
        content: "hi",
        media: null,
        client_id: null,
      });
      // stored, not yet broadcast: acme marks everything read ("mark all read")
      await unreadReached.promise;
      assert.deepEqual(await service.readUpTo(acme, 2_147_483_647), { count: 1 });
      unreadRelease.resolve();
      await sending;
      await watch.until(
        () => events.find((event) => event.startsWith("messages_read")),
        "the messages_read",
      );
      assert.deepEqual(events, [
        "chat_message#1 is_read=false",
        "unread_messages",
        "messages_read up to #1 count=1",
      ]);
    } finally {
      leave();
      feed.close();
    }
  } finally {
    await sql.end();
  }
});
