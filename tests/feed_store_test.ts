/**
 * The chat feed and the service against a real PostgreSQL store, with one of its reads held
 * back or failed: reading what the bus did not bring (after a NATS reconnect, or a gap) while
 * the bus goes on delivering, and a send whose unread snapshot cannot be read.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createMemoryBus } from "../bus/memory_bus.ts";
import { createSubjects } from "../bus/subjects.ts";
import { createChatFeed, type Delivery } from "../chat/feed.ts";
import type { ChatStore, MediaPort } from "../chat/ports.ts";
import { createChatService } from "../chat/service.ts";
import { type Chat, toClientMessage } from "../chat/types.ts";
import { createPostgresStore } from "../db/postgres_store.ts";
import { freshDatabase, fromAlice } from "./support/database.ts";

/**
 * A feed on a fresh database with one chat, whose store's getChat waits for `chatRead` to be
 * called before it reads (and fails when told to), and a way to store messages that the bus
 * never carried.
 */
async function feedOnStore(
  test: (setup: {
    feed: ReturnType<typeof createChatFeed>;
    chat: Chat;
    seqs: number[];
    /** Every event delivered, as `type#seq`. */
    events: string[];
    storeQuietly: (content: string) => Promise<Awaited<ReturnType<ChatStore["insertMessage"]>>>;
    holdChatRead: (hold: { fail?: boolean }) => { release: () => void; reached: Promise<void> };
  }) => Promise<void>,
  options: { gapWaitMs?: number } = {},
) {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 3, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    let held: { fail: boolean; release: Promise<void>; reached: () => void } | undefined;
    const slowStore: ChatStore = {
      ...store,
      async getChat(chatId) {
        const hold = held;
        held = undefined;
        if (hold) {
          hold.reached();
          await hold.release;
          if (hold.fail) throw new Error("the database went away");
        }
        return await store.getChat(chatId);
      },
    };
    const feed = createChatFeed({
      bus: createMemoryBus(),
      store: slowStore,
      subjects: createSubjects("test"),
    }, options);
    const { chat } = await store.createChat("alice", "acme");
    const seqs: number[] = [];
    const events: string[] = [];
    const leave = await feed.join([chat.id], (delivery: Delivery) => {
      const { frame } = delivery.envelope;
      if (frame.type === "chat_message") seqs.push(frame.message.seq);
      const seq = "seq" in frame ? frame.seq : "message" in frame ? frame.message.seq : "";
      events.push(`${frame.type}#${seq}`);
    });
    try {
      await test({
        feed,
        chat,
        seqs,
        events,
        storeQuietly: (content) => store.insertMessage(fromAlice(chat.id, content)),
        holdChatRead: ({ fail = false }) => {
          let release!: () => void;
          let reached!: () => void;
          const reachedPromise = new Promise<void>((resolve) => reached = resolve);
          held = { fail, release: new Promise((resolve) => release = resolve), reached };
          return { release, reached: reachedPromise };
        },
      });
    } finally {
      leave();
    }
  } finally {
    await sql.end();
  }
}

const publishMessage = (
  feed: ReturnType<typeof createChatFeed>,
  chat: Chat,
  stored: Awaited<ReturnType<ChatStore["insertMessage"]>>,
) =>
  feed.publishChat(chat.id, {
    chat: { user_id: chat.user_id, vendor_id: chat.vendor_id },
    audience: { to: "all" },
    frame: { type: "chat_message", chat_id: chat.id, message: toClientMessage(stored.message) },
    sent_at: Date.now(),
  });

Deno.test("catching up from the store keeps seq order while the bus delivers the next message", async () => {
  await feedOnStore(async ({ feed, chat, seqs, storeQuietly, holdChatRead }) => {
    // stored while this instance was cut off from the bus
    await storeQuietly("one");
    const two = await storeQuietly("two");
    const hold = holdChatRead({});
    const caughtUp = feed.catchUp();
    await hold.reached;
    // meanwhile the bus is back, and another instance sends the second again
    publishMessage(feed, chat, two);
    hold.release();
    await caughtUp;
    assert.deepEqual(seqs, [1, 2]);
    // nothing is left waiting for a gap: the next message from the bus comes at once
    publishMessage(feed, chat, await storeQuietly("three"));
    assert.deepEqual(seqs, [1, 2, 3]);
  });
});

Deno.test("a catch-up whose read fails loses nothing: the next one delivers it all in order", async () => {
  await feedOnStore(async ({ feed, chat, seqs, storeQuietly, holdChatRead }) => {
    await storeQuietly("one");
    await storeQuietly("two");
    const hold = holdChatRead({ fail: true });
    const caughtUp = feed.catchUp();
    await hold.reached;
    hold.release();
    await assert.rejects(caughtUp, /the database went away/);
    assert.deepEqual(seqs, [], "nothing delivered, nothing counted as delivered");
    // the bus brings the next one: it waits behind the gap
    publishMessage(feed, chat, await storeQuietly("three"));
    await feed.catchUp();
    assert.deepEqual(seqs, [1, 2, 3]);
  });
});

Deno.test("a read and a deletion of a message held behind a gap reach sockets after it, not before", async () => {
  await feedOnStore(async ({ feed, chat, events, storeQuietly }) => {
    await storeQuietly("one"); // the bus never brings this one: a gap
    const { message } = await storeQuietly("two");
    publishMessage(feed, chat, { message, duplicate: false, receiver_unread: null });
    const about = { chat_id: chat.id, message_id: message.id, seq: message.seq };
    const envelope = { chat: { user_id: chat.user_id, vendor_id: chat.vendor_id } } as const;
    const at = new Date().toISOString();
    feed.publishChat(chat.id, {
      ...envelope,
      audience: { to: "all" },
      frame: { type: "message_read", ...about, reader_id: "acme", read_at: at },
      sent_at: Date.now(),
    });
    feed.publishChat(chat.id, {
      ...envelope,
      audience: { to: "all" },
      frame: { type: "message_deleted", ...about, deleted_by: "alice", deleted_at: at },
      sent_at: Date.now(),
    });
    // the message the gap fill read brings its receiver's unread push, after a read of its own
    const deadline = Date.now() + 2_000;
    while (events.length < 5 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(events.filter((event) => event !== "unread_messages#"), [
      "chat_message#1",
      "chat_message#2",
      "message_read#2",
      "message_deleted#2",
    ]);
    assert.equal(events.filter((event) => event === "unread_messages#").length, 1, `${events}`);
  }, { gapWaitMs: 20 });
});

Deno.test("a stored message whose unread snapshot cannot be read is still acknowledged and broadcast", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 3, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    const { chat } = await store.createChat("alice", "acme");
    // the writer's own snapshot is kept for chats it saw; a write it could not batch has none
    let failUnread = false;
    const failing: ChatStore = {
      ...store,
      unread: (...args) =>
        failUnread
          ? Promise.reject(new Error("canceling statement due to statement timeout"))
          : store.unread(...args),
      insertMessage: async (message) => ({
        ...(await store.insertMessage(message)),
        receiver_unread: null,
      }),
    };
    const feed = createChatFeed({
      bus: createMemoryBus(),
      store: failing,
      subjects: createSubjects("test"),
    });
    const reported: string[] = [];
    const service = createChatService({
      store: failing,
      events: feed,
      now: Date.now,
      media: {} as MediaPort, // text only
      onError: (_error, context) => reported.push(context),
    });
    const delivered: string[] = [];
    const leave = await feed.join([chat.id], (delivery) => {
      delivered.push(delivery.envelope.frame.type);
    });
    try {
      const actor = { user_id: "alice", membership: await service.membership("alice", chat.id) };
      failUnread = true;
      const sent = await service.sendMessage(actor, {
        receiver_id: "acme",
        media_type: "text",
        content: "stored, then the read failed",
        media: null,
        client_id: "once",
      });
      assert.equal(sent.duplicate, false);
      assert.deepEqual(delivered, ["chat_message"], "broadcast, without this message's push");
      assert.deepEqual(reported, ["unread snapshot after a send"]);
      failUnread = false;
      const again = await service.sendMessage(actor, {
        receiver_id: "acme",
        media_type: "text",
        content: "the next one",
        media: null,
        client_id: null,
      });
      assert.equal(again.message.seq, 2);
      assert.deepEqual(delivered, ["chat_message", "chat_message", "unread_messages"]);
    } finally {
      leave();
    }
  } finally {
    await sql.end();
  }
});

Deno.test("a catch-up whose read of one chat fails still delivers the other chats, and then reports the failure", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 3, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    const broken = (await store.createChat("alice", "acme")).chat;
    const healthy = (await store.createChat("bob", "acme")).chat;
    const failing: ChatStore = {
      ...store,
      messagesBetween: (chatId, from, to) =>
        chatId === broken.id
          ? Promise.reject(new Error("the database went away"))
          : store.messagesBetween(chatId, from, to),
    };
    const feed = createChatFeed({
      bus: createMemoryBus(),
      store: failing,
      subjects: createSubjects("test"),
    });
    const delivered: string[] = [];
    // the broken chat first: it is read first
    const leave = await feed.join([broken.id, healthy.id], (delivery) => {
      const { frame } = delivery.envelope;
      if (frame.type === "chat_message") delivered.push(`${frame.chat_id}#${frame.message.seq}`);
    });
    try {
      // stored while this instance was cut off from the bus
      await store.insertMessage(fromAlice(broken.id, "lost for now"));
      await store.insertMessage({ ...fromAlice(healthy.id, "lost too"), sender_id: "bob" });
      await assert.rejects(feed.catchUp(), /the database went away/);
      assert.deepEqual(delivered, [`${healthy.id}#1`]);
    } finally {
      leave();
    }
  } finally {
    await sql.end();
  }
});

Deno.test("a catch-up of a chat that missed more messages than a call takes arguments delivers them, the unread push after them, and the chats after it", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 3, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    const busy = (await store.createChat("alice", "acme")).chat;
    const quiet = (await store.createChat("bob", "acme")).chat;
    const feed = createChatFeed({
      bus: createMemoryBus(),
      store,
      subjects: createSubjects("test"),
    });
    let busyMessages = 0;
    const delivered: string[] = [];
    const pushed = Promise.withResolvers<{ count: number; afterSeq: number | undefined }>();
    // the busy chat first: it is read first
    const leave = await feed.join([busy.id, quiet.id], (delivery) => {
      const { frame } = delivery.envelope;
      if (frame.type === "chat_message" && frame.chat_id === busy.id) busyMessages++;
      else if (frame.type === "chat_message") {
        delivered.push(`${frame.chat_id}#${frame.message.seq}`);
      } else if (frame.type === "unread_messages" && frame.chat_id === busy.id) {
        pushed.resolve({ count: frame.count, afterSeq: delivery.afterSeq });
      }
    });
    try {
      // stored while this instance was cut off from the bus: a busy chat, a long outage
      const missed = 150_000;
      await sql`
        insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type,
                              content, created_at, updated_at)
        select ${busy.id}, g, 'alice', 'customer', 'acme', 'text', 'message ' || g, now(), now()
        from generate_series(1, ${missed}::int) g`;
      await sql`update chats set last_seq = ${missed}, vendor_unread = ${missed}
                where id = ${busy.id}`;
      await store.insertMessage({ ...fromAlice(quiet.id, "lost too"), sender_id: "bob" });
      await feed.catchUp();
      assert.equal(busyMessages, missed);
      assert.deepEqual(delivered, [`${quiet.id}#1`]);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const push = await Promise.race([
        pushed.promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("no unread push after the catch-up")), 5_000);
        }),
      ]).finally(() => clearTimeout(timer));
      assert.deepEqual(push, { count: missed, afterSeq: missed });
    } finally {
      leave();
    }
  } finally {
    await sql.end();
  }
});
