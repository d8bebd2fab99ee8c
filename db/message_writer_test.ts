import assert from "node:assert/strict";
import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import type { ChatStore, NewMessage } from "../chat/ports.ts";
import { type Chat, UNREAD_PREVIEW_LIMIT } from "../chat/types.ts";
import {
  freshDatabase,
  fromAlice,
  noneWaitingForLock,
  waitingForLock,
} from "../tests/support/database.ts";
import { within } from "../tests/support/wait.ts";
import { STORE_TIMEOUT_MS } from "./errors.ts";
import { writerLaneOf } from "./writer_lanes.ts";
import { createPostgresStore } from "./postgres_store.ts";

Deno.test("a message the database refuses fails alone, not the group commit it was written with", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    const { chat } = await store.createChat("alice", "acme");
    const message = (content: string) => fromAlice(chat.id, content);
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

Deno.test("a statement that failed after sending rows leaves the writer's next batches read right", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  // one connection for both lanes: the failure and the batches after it share it
  const writerSql = postgres(database.url, { max: 1, onnotice: () => {} });
  // rows 1 and 2, then division by zero: postgres.js keeps counting from there
  const failAfterTwoRows = () =>
    assert.rejects(writerSql`select 1 / (3 - g) as v from generate_series(1, 5) as g`);
  try {
    const store = createPostgresStore(sql, writerSql);
    const { chat } = await store.createChat("alice", "acme");
    await failAfterTwoRows();
    const sent = await store.insertMessage(fromAlice(chat.id, "after a failure", "k1"));
    assert.deepEqual(
      [sent.duplicate, sent.message.seq, sent.message.content, sent.receiver_unread?.count],
      [false, 1, "after a failure", 1],
    );
    await failAfterTwoRows();
    const again = await store.insertMessage(fromAlice(chat.id, "after a failure", "k1"));
    assert.equal(again.duplicate, true);
    assert.deepEqual(again.message, sent.message);
  } finally {
    await Promise.all([sql.end(), writerSql.end()]);
  }
});

Deno.test("messages and read marks are written over the writer's own connections, not the pool", async () => {
  await using database = await freshDatabase();
  const statements = { pool: [] as string[], writer: [] as string[] };
  const connect = (name: keyof typeof statements) =>
    postgres(database.url, {
      max: 2,
      onnotice: () => {},
      debug: (_connection, query) => statements[name].push(query),
    });
  const sql = connect("pool");
  const writerSql = connect("writer");
  try {
    const store = createPostgresStore(sql, writerSql);
    const { chat } = await store.createChat("alice", "acme");
    const { message } = await store.insertMessage(fromAlice(chat.id, "hello"));
    const read = await store.markRead(chat.id, message.id, "vendor", chat.vendor_id);
    assert.equal(read?.changed, true);
    const writes = (name: keyof typeof statements) =>
      statements[name].filter((query) => /insert into messages|update messages/.test(query));
    assert.equal(writes("writer").length, 2, "the batch and the read mark");
    assert.deepEqual(writes("pool"), []);
  } finally {
    await Promise.all([sql.end(), writerSql.end()]);
  }
});

Deno.test("a batch the database fails to break a deadlock is tried again message by message, not failed", async () => {
  await withOtherTransaction(async ({ sql, store, chat, transaction }) => {
    // Another writer (an instance, say) has written alice's client_id "k" and not committed.
    // The batch takes the chat's row, then waits on that message; the other then wants the
    // chat's row: each waits on the other. The other looks for deadlocks later, so the
    // database fails the batch.
    await transaction`set local deadlock_timeout = '10s'`;
    await transaction`
      insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type,
                            content, client_id)
      values (${chat.id}, 1000, 'alice', 'customer', 'acme', 'text', 'theirs', 'k')`;
    const sent = store.insertMessage(fromAlice(chat.id, "mine", "k"));
    sent.catch(() => {}); // awaited below
    await within(waitingForLock(sql), 5_000, "the batch to wait for the other's message");
    await transaction`update chats set updated_at = now() where id = ${chat.id}`;
    await transaction`commit`;
    const result = await within(sent, 10_000, "the message");
    assert.equal(result.duplicate, true, "client_id k was written by the other");
    assert.equal(result.message.content, "theirs");
  });
});

Deno.test("two instances writing one chat: each send's unread snapshot equals a fresh read", async () => {
  await using database = await freshDatabase();
  const pools = [0, 1].map(() => postgres(database.url, { max: 2, onnotice: () => {} }));
  try {
    // each instance's remembered windows go stale whenever the other one writes or reads
    const [first, second] = pools.map((sql) => createPostgresStore(sql)) as [
      ChatStore,
      ChatStore,
    ];
    const { chat } = await first.createChat("alice", "acme");
    const toAcme = (content: string) => fromAlice(chat.id, content);
    for (let step = 0; step < 24; step++) {
      const store = step % 3 === 0 ? first : second;
      const sent = await store.insertMessage(toAcme(`m${step}`));
      if (step % 4 === 3) await first.markRead(chat.id, sent.message.id, "vendor", chat.vendor_id);
      if (step % 5 === 4) {
        await second.markReadUpTo(chat.id, "vendor", sent.message.seq - 2, chat.vendor_id);
      }
      const fresh = await first.unread(chat.id, "vendor", 50);
      const next = await store.insertMessage(toAcme(`n${step}`));
      assert.equal(next.receiver_unread?.count, fresh.count + 1, `count at step ${step}`);
      assert.deepEqual(
        next.receiver_unread?.messages.map((message) => message.seq),
        [...fresh.messages.map((message) => message.seq), next.message.seq].slice(-50),
        `messages at step ${step}`,
      );
    }
  } finally {
    await Promise.all(pools.map((sql) => sql.end()));
  }
});

Deno.test("a batch given up on is not stored when the database answers later", async () => {
  await withOtherTransaction(async ({ sql, store, chat, transaction }) => {
    // the other transaction holds the chat's row past the store's time limit
    await transaction`update chats set updated_at = now() where id = ${chat.id}`;
    const sent = store.insertMessage(fromAlice(chat.id, "too late", "late"));
    sent.catch(() => {}); // awaited below
    await within(waitingForLock(sql), 5_000, "the batch to wait for the chat's row");
    await assert.rejects(
      within(sent, STORE_TIMEOUT_MS + 2_000, "the send's answer"),
      (error) => error instanceof ChatError && error.code === "unavailable",
    );
    // answered only once the statement has ended: nothing is left to store it later
    const [stillWaiting] = await sql`
      select 1 from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`;
    assert.equal(stillWaiting, undefined, "the batch's statement still waits for the chat's row");
    await transaction`commit`;
    // a moment for a statement that was not cancelled to finish
    await new Promise((resolve) => setTimeout(resolve, 200));
    const [{ count }] = await sql<[{ count: number }]>`
      select count(*)::int as count from messages where chat_id = ${chat.id}`;
    assert.equal(count, 0, "the message the sender was told failed is not stored");
    const retried = await store.insertMessage(fromAlice(chat.id, "too late", "late"));
    assert.equal(retried.duplicate, false);
    assert.equal(retried.message.seq, 1);
  });
});

Deno.test("a message tried alone after its batch failed is not stored once its sender was answered", async () => {
  await withOtherTransaction(async ({ sql, store, chat, transaction }) => {
    // a second chat written in the same lane, whose row is free
    let free: Chat | undefined;
    for (let index = 0; !free && index < 40; index++) {
      const { chat: candidate } = await store.createChat(`customer-${index}`, "acme");
      if (writerLaneOf(candidate.id) === writerLaneOf(chat.id)) free = candidate;
    }
    assert.ok(free, "no chat in the same lane");
    const inFree = (content: string): NewMessage => ({
      ...fromAlice(free.id, content),
      sender_id: free.user_id,
    });
    // the other transaction holds the first chat's row past the store's time limit
    await transaction`update chats set updated_at = now() where id = ${chat.id}`;
    // the first is written alone; the other two wait for it and go in one batch, which the
    // database refuses for the NUL, so that each is tried alone
    const [first, refused, late] = [
      store.insertMessage(inFree("first")),
      store.insertMessage(inFree("nul \u0000 inside")),
      store.insertMessage(fromAlice(chat.id, "too late", "late")),
    ];
    late.catch(() => {}); // awaited below
    assert.equal((await first).message.seq, 1);
    await assert.rejects(refused, (error) => error instanceof ChatError);
    await assert.rejects(
      within(late, STORE_TIMEOUT_MS + 2_000, "the late send's answer"),
      (error) => error instanceof ChatError && error.code === "unavailable",
    );
    // nor does it wait on for the row, holding a connection of the writer's
    await noneWaitingForLock(sql, 1_000);
    await transaction`commit`;
    // had the lone insert committed once the row was free, this would be its duplicate
    const retried = await store.insertMessage(fromAlice(chat.id, "too late", "late"));
    assert.equal(retried.duplicate, false, "the message the sender was told failed was stored");
    assert.equal(retried.message.seq, 1);
    const [{ count }] = await sql<[{ count: number }]>`
      select count(*)::int as count from messages where chat_id = ${chat.id}`;
    assert.equal(count, 1);
  });
});

Deno.test("an unread snapshot's count and messages are of one moment while messages come and are read", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 6, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    const { chat } = await store.createChat("alice", "acme");
    let writing = true;
    const writes = (async () => {
      try {
        for (let round = 0; round < 60; round++) {
          const sent = await Promise.all(
            [1, 2, 3].map((index) => store.insertMessage(fromAlice(chat.id, `${round}.${index}`))),
          );
          // read up to the middle one now and then: the count stays well under the preview's 50
          if (round % 3 === 2) {
            await store.markReadUpTo(chat.id, "vendor", sent[1]!.message.seq, chat.vendor_id);
          }
        }
      } finally {
        writing = false;
      }
    })();
    let checks = 0;
    const torn: string[] = [];
    while (writing) {
      const snapshots = await Promise.all(
        [1, 2, 3, 4].map(() => store.unread(chat.id, "vendor", UNREAD_PREVIEW_LIMIT)),
      );
      for (const { count, messages } of snapshots) {
        checks++;
        if (messages.length !== count) torn.push(`count ${count}, messages ${messages.length}`);
      }
    }
    await writes;
    assert.ok(checks >= 40, `only ${checks} snapshots taken`);
    assert.deepEqual(torn.slice(0, 5), [], `${torn.length} of ${checks} snapshots torn`);
  } finally {
    await sql.end();
  }
});

Deno.test("two instances sending, marking read, reading up to a seq and deleting at once keep seqs, counters and snapshots exact", async () => {
  await using database = await freshDatabase();
  const pools = [0, 1].map(() => postgres(database.url, { max: 3, onnotice: () => {} }));
  try {
    const stores = pools.map((sql) => createPostgresStore(sql));
    const chats: Chat[] = [];
    for (let index = 0; index < 4; index++) {
      chats.push((await stores[0]!.createChat(`customer-${index}`, `vendor-${index}`)).chat);
    }
    const messageIn = (
      chat: Chat,
      fromVendor: boolean,
      content: string,
      clientId: string | null,
    ) => ({
      chat_id: chat.id,
      sender_id: fromVendor ? chat.vendor_id : chat.user_id,
      sender_side: fromVendor ? "vendor" as const : "customer" as const,
      receiver_id: fromVendor ? chat.user_id : chat.vendor_id,
      media_type: "text" as const,
      content,
      media_id: null,
      client_id: clientId,
    });
    let seed = 11;
    const pick = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    const sent: Array<{ chat: Chat; id: string; seq: number; fromVendor: boolean }> = [];
    for (let round = 0; round < 60; round++) {
      // forty operations at once, on either instance, on four chats
      const operations: Promise<unknown>[] = [];
      for (let index = 0; index < 40; index++) {
        const store = stores[pick(2)]!;
        const chat = chats[pick(chats.length)]!;
        const kind = pick(10);
        if (kind < 6 || sent.length < 5) {
          const fromVendor = pick(2) === 1;
          // now and then a client_id sent before, maybe by the other instance at the same time
          const clientId = pick(4) === 0 ? `again-${pick(20)}` : null;
          operations.push(
            store.insertMessage(messageIn(chat, fromVendor, `${round}.${index}`, clientId)).then(
              ({ message, duplicate }) => {
                if (!duplicate) sent.push({ chat, id: message.id, seq: message.seq, fromVendor });
              },
            ),
          );
          continue;
        }
        const target = sent[pick(sent.length)]!;
        const reader = target.fromVendor ? "customer" : "vendor";
        const readerId = target.fromVendor ? target.chat.user_id : target.chat.vendor_id;
        const sender = target.fromVendor ? target.chat.vendor_id : target.chat.user_id;
        if (kind < 8) operations.push(store.markRead(target.chat.id, target.id, reader, readerId));
        else if (kind < 9) {
          operations.push(store.markReadUpTo(target.chat.id, reader, target.seq, readerId));
        } else operations.push(store.deleteMessage(target.id, sender));
      }
      const failed = (await Promise.allSettled(operations)).filter((r) => r.status === "rejected");
      assert.deepEqual(failed, [], `round ${round}`);
      const counted = await pools[0]!`
        select c.last_seq, c.customer_unread, c.vendor_unread,
          (select count(*)::int from messages m where m.chat_id = c.id) as stored,
          (select coalesce(max(seq), 0) from messages m where m.chat_id = c.id) as max_seq,
          (select count(*)::int from messages m where m.chat_id = c.id and sender_side = 'vendor'
             and not is_read and deleted_at is null) as unread_by_customer,
          (select count(*)::int from messages m where m.chat_id = c.id and sender_side = 'customer'
             and not is_read and deleted_at is null) as unread_by_vendor
        from chats c`;
      for (const chat of counted) {
        assert.equal(chat.last_seq, chat.stored, `round ${round}: seqs without a gap`);
        assert.equal(chat.max_seq, chat.stored, `round ${round}: seqs without a gap`);
        assert.equal(chat.customer_unread, chat.unread_by_customer, `round ${round}`);
        assert.equal(chat.vendor_unread, chat.unread_by_vendor, `round ${round}`);
      }
      // each instance's next snapshot is a fresh read plus the new message
      for (const chat of chats) {
        for (const store of stores) {
          const fresh = await store.unread(chat.id, "vendor", 50);
          const next = await store.insertMessage(messageIn(chat, false, "probe", null));
          sent.push({ chat, id: next.message.id, seq: next.message.seq, fromVendor: false });
          assert.equal(next.receiver_unread?.count, fresh.count + 1, `round ${round}`);
          assert.deepEqual(
            next.receiver_unread?.messages.map((message) => message.seq),
            [...fresh.messages.map((message) => message.seq), next.message.seq].slice(-50),
            `round ${round}`,
          );
        }
      }
    }
  } finally {
    await Promise.all(pools.map((sql) => sql.end()));
  }
});

/** A store on a fresh database with alice's chat with acme, and another connection's open transaction. */
async function withOtherTransaction(
  test: (setup: {
    sql: postgres.Sql;
    store: ChatStore;
    chat: Chat;
    transaction: postgres.ReservedSql;
  }) => Promise<void>,
): Promise<void> {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  const other = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    const { chat } = await store.createChat("alice", "acme");
    const transaction = await other.reserve();
    try {
      await transaction`begin`;
      await test({ sql, store, chat, transaction });
    } finally {
      transaction.release();
    }
  } finally {
    await other.end();
    await sql.end();
  }
}
