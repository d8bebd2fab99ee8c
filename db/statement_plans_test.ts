import assert from "node:assert/strict";
import type { Sql } from "postgres";
import type { NewMessage } from "../chat/ports.ts";
import {
  onOneConnection,
  PLAN_MODES,
  readsOf,
  readsUnderPlan,
  withEachPlanMode,
} from "../tests/support/statement_reads.ts";
import { insertMessageBatch } from "./insert_batch.ts";
import { createAdminStore } from "./admin_store.ts";
import { createPostgresStore } from "./postgres_store.ts";
import { unsentMedia } from "./media_retention.ts";
import { markReadBatch } from "./read_batch.ts";
import { readUnreadWindows } from "./unread_windows.ts";

// PostgreSQL plans a prepared statement from the statistics of its first executions and keeps
// that plan. On a young database the messages table looks small then, and a join with it gets
// planned as a scan of the whole table, which costs more with every message stored until
// autovacuum next analyzes it. The group commit's statements must look messages up by index
// whatever the statistics were when they were planned, and the unread reads must go through the
// unread index whatever the statistics say about how many messages are unread.

async function youngDatabaseWithMessages(sql: Sql) {
  const chats = await sql<Array<{ id: string }>>`
    insert into chats (user_id, vendor_id)
    select 'customer-' || n, 'vendor-' || n from generate_series(1, 10) n
    returning id`;
  const message = (chatIndex: number, n: number): NewMessage => ({
    chat_id: chats[chatIndex]!.id,
    sender_id: `customer-${chatIndex + 1}`,
    sender_side: "customer",
    receiver_id: `vendor-${chatIndex + 1}`,
    media_type: "text",
    content: `message ${n}`,
    media_id: null,
    client_id: `client-${n}`,
  });
  // more executions than PostgreSQL makes custom plans for, each through the prepared statement
  for (let n = 0; n < 40; n++) {
    await insertMessageBatch(sql, chats.map((_, chatIndex) => message(chatIndex, n)));
  }
  return { chats, message };
}

Deno.test("the group commit's insert looks client_ids up by index, however small the table was when it was planned", () =>
  onOneConnection(async (sql) => {
    const { chats, message } = await youngDatabaseWithMessages(sql);
    const { seqScans } = await readsOf(sql, "messages", async (tx) => {
      for (let n = 40; n < 50; n++) {
        const rows = await insertMessageBatch(tx, [
          ...chats.map((_, chatIndex) => message(chatIndex, n)),
          message(0, 3), // a client_id used before: found, not written again
        ]);
        assert.equal(rows.filter((row) => row.duplicate).length, 1);
      }
    });
    assert.equal(seqScans, 0);
  }));

Deno.test("the group commit's insert looks each sender's chat and vendor membership up by key, not by a scan", () =>
  onOneConnection(async (sql) => {
    const { chats, message } = await youngDatabaseWithMessages(sql);
    await sql`
      insert into vendor_members (vendor_id, user_id, role)
      select 'vendor-' || n, 'agent-' || n, 'agent' from generate_series(1, 10) n`;
    const fromVendorSide = (chatIndex: number, senderId: string, n: number): NewMessage => ({
      ...message(chatIndex, n),
      sender_id: senderId,
      sender_side: "vendor",
      receiver_id: `customer-${chatIndex + 1}`,
    });
    for (const [table, plan] of withEachPlanMode(["chats", "vendor_members"])) {
      const reads = await readsUnderPlan(sql, { table, plan }, async (tx) => {
        for (let n = 40; n < 50; n++) {
          const rows = await insertMessageBatch(tx, [
            ...chats.map((_, chatIndex) => message(chatIndex, n)),
            fromVendorSide(0, "vendor-1", n),
            fromVendorSide(1, "agent-2", n),
            fromVendorSide(2, "agent-4", n), // a member of another vendor: not written
          ]);
          assert.equal(rows.length, chats.length + 2);
        }
      });
      assert.equal(reads.seqScans, 0, `${plan}: a scan of ${table}`);
    }
  }));

Deno.test("the group commit's read marks look messages up by index, however small the table was when they were planned", () =>
  onOneConnection(async (sql) => {
    await youngDatabaseWithMessages(sql);
    const messages = await sql<Array<{ id: string; chat_id: string; vendor_id: string }>>`
      select m.id, m.chat_id, c.vendor_id from messages m join chats c on c.id = m.chat_id
      order by m.chat_id, m.seq`;
    // the chat's vendor: a reader not in the chat marks nothing
    const mark = (index: number) => ({
      chat_id: messages[index]!.chat_id,
      message_id: messages[index]!.id,
      reader_side: "vendor" as const,
      reader_id: messages[index]!.vendor_id,
    });
    for (let n = 0; n < 20; n++) await markReadBatch(sql, [mark(2 * n), mark(2 * n + 1)]);
    const { seqScans } = await readsOf(sql, "messages", async (tx) => {
      for (let n = 20; n < 30; n++) {
        const rows = await markReadBatch(tx, [mark(2 * n), mark(2 * n + 1), mark(0)]);
        assert.deepEqual(rows.map((row) => row.changed).sort(), [false, true, true]);
      }
    });
    assert.equal(seqScans, 0);
  }));

/**
 * A chat of alice and acme with 5,000 messages, sides alternating, all read but the newest ten,
 * beside 20 chats whose messages are mostly unread (statistics taken under load), analyzed.
 */
async function chatMostlyRead(sql: Sql) {
  const [chat] = await sql<[{ id: string }]>`
    insert into chats (user_id, vendor_id) values ('alice', 'acme') returning id`;
  await sql`
    insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type, content,
                          is_read)
    select ${chat!.id}, n, case when n % 2 = 0 then 'alice' else 'acme' end,
           case when n % 2 = 0 then 'customer' else 'vendor' end,
           case when n % 2 = 0 then 'acme' else 'alice' end, 'text', 'message ' || n,
           n <= 4990
    from generate_series(1, 5000) n`;
  await sql`update chats set last_seq = 5000, customer_unread = 5, vendor_unread = 5`;
  // elsewhere most messages are unread, as statistics taken under load say: reading this
  // chat backwards by seq would then look like a short walk to the planner
  await sql`
    with others as (
      insert into chats (user_id, vendor_id)
      select 'customer-' || n, 'vendor-' || n from generate_series(1, 20) n returning id
    )
    insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type, content)
    select o.id, n, 'x', case when n % 2 = 0 then 'customer' else 'vendor' end, 'y', 'text', 'm'
    from others o, generate_series(1, 2000) n`;
  await sql`analyze messages`;
  return chat!;
}

Deno.test("a side's unread are read from the unread index, not by walking the chat's read history", () =>
  onOneConnection(async (sql) => {
    const chat = await chatMostlyRead(sql);
    const reads = await readsOf(sql, "messages", async (tx) => {
      const unread = await createPostgresStore(tx).unread(chat.id, "customer", 50);
      assert.deepEqual(unread.messages.map((message) => message.seq), [
        4991,
        4993,
        4995,
        4997,
        4999,
      ]);
      const windows = await readUnreadWindows(tx, [{ chatId: chat.id, side: "vendor" }]);
      assert.deepEqual(
        windows.get(`${chat.id}:vendor`)?.messages.map((message) => message.seq),
        [4992, 4994, 4996, 4998, 5000],
      );
    });
    assert.equal(reads.seqScans, 0);
    // the five unread of each side, not the 4,990 read ones
    assert.equal(reads.rowsFetchedByIndex, 10);
  }));

Deno.test("a history page and the unread a user asks for are read by index, as those read unasked", () =>
  onOneConnection(async (sql) => {
    const chat = await chatMostlyRead(sql);
    const asker = { userId: "alice", chatId: chat.id };
    for (const plan of PLAN_MODES) {
      const reads = await readsUnderPlan(sql, { table: "messages", plan }, async (tx) => {
        const store = createPostgresStore(tx);
        const unread = await store.unreadAsked(asker, 50);
        assert.ok("read" in unread);
        assert.deepEqual(unread.read.messages.map((message) => message.seq), [
          4991,
          4993,
          4995,
          4997,
          4999,
        ]);
        const latest = await store.historyAsked(asker, { limit: 20 });
        assert.ok("read" in latest);
        assert.deepEqual(latest.read.items.map((message) => message.seq).slice(0, 2), [4981, 4982]);
        const later = await store.historyAsked(asker, { limit: 20, after_seq: 100 });
        assert.ok("read" in later);
        assert.deepEqual(later.read.items.map((message) => message.seq).slice(0, 2), [101, 102]);
      });
      assert.equal(reads.seqScans, 0, `${plan}: a scan of messages`);
      // the five unread, and two pages and the message after each
      assert.equal(reads.rowsFetchedByIndex, 5 + 2 * 21, plan);
    }
  }));

Deno.test("an edit or deletion of one's own message, and a moderator's deletion, read and lock that message and its chat by key, however it is planned", () =>
  onOneConnection(async (sql) => {
    const chat = await chatMostlyRead(sql);
    // alice's (an even seq) and acme's
    const [own, acmes] = await sql<Array<{ id: string }>>`
      select id from messages where chat_id = ${chat.id} and seq in (4990, 4991) order by seq`;
    const alice = { userId: "alice", chatId: chat.id };
    for (const [table, plan] of withEachPlanMode(["messages", "chats"])) {
      const reads = await readsUnderPlan(sql, { table, plan }, async (tx) => {
        const store = createPostgresStore(tx);
        const changes = [
          await store.editOwnMessage(alice, own!.id, "edited"),
          await store.editOwnMessage(alice, own!.id, "edited"),
          await store.editOwnMessage(alice, acmes!.id, "edited"),
          await store.deleteOwnMessage(alice, own!.id),
          await store.deleteOwnMessage(alice, own!.id),
        ];
        assert.deepEqual(
          changes.map((change) => "refused" in change ? change.refused : change.changed),
          [true, false, "not_sender", true, false],
        );
        const audit = { action: "delete_message", moderator_id: "mod", reason: "spam" };
        const moderated = [
          await store.deleteMessage(acmes!.id, "mod", { audit }),
          await store.deleteMessage(acmes!.id, "mod", { audit }),
          await store.deleteMessage(crypto.randomUUID(), "mod", { audit }),
        ];
        assert.deepEqual(moderated.map((deletion) => deletion?.changed ?? null), [
          true,
          false,
          null,
        ]);
      });
      const which = `${table} with ${plan}`;
      assert.equal(reads.seqScans, 0, `${which}: a scan`);
      // a few rows a statement (the message or chat, checked, then locked and changed)
      assert.ok(reads.rowsRead <= 3 * 8, `${which}: ${reads.rowsRead} rows read`);
    }
  }));

/**
 * 20,000 chats of the last year over 200 vendors and 5,000 customers, each with one message.
 * Before them all, the 2,000 chats of a vendor and the 2,000 of a customer that have had none
 * since: a twelfth of the table each, so the statistics count both among the commonest
 * participants.
 */
async function chatsWithOldParticipants(sql: Sql) {
  await sql`
    insert into chats (user_id, vendor_id, last_seq, created_at, updated_at)
    select user_id, vendor_id, 1, at, at from (
      select 'buyer-' || n, 'vendor-gone', now() - interval '3 years' + n * interval '1 minute'
      from generate_series(1, 2000) n
      union all
      select 'customer-gone', 'seller-' || n, now() - interval '2 years' + n * interval '1 minute'
      from generate_series(1, 2000) n
      union all
      select 'customer-' || n % 5003, 'vendor-' || n % 200,
             now() - interval '1 year' + n * interval '20 minutes'
      from generate_series(1, 20000) n
    ) chat (user_id, vendor_id, at)`;
  await sql`
    insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type, content)
    select id, 1, user_id, 'customer', vendor_id, 'text', 'hello' from chats`;
  await sql`vacuum analyze chats, messages`;
}

Deno.test("ListChats reads a page of a participant's chats, not every newer chat, when that participant's chats are the oldest", () =>
  onOneConnection(async (sql) => {
    await chatsWithOldParticipants(sql);
    const filters = [{ vendor_id: "vendor-gone" }, { user_id: "customer-gone" }, {}];
    for (const [filter, plan] of withEachPlanMode(filters)) {
      const listed: string[] = [];
      const reads = await readsUnderPlan(sql, { table: "chats", plan }, async (tx) => {
        const admin = createAdminStore(tx);
        const first = await admin.listChats({ ...filter, limit: 50 });
        assert.ok(first.next);
        const second = await admin.listChats({ ...filter, limit: 50, after: first.next });
        listed.push(...[...first.items, ...second.items].map((chat) => chat.id));
      });
      const newest = await sql<Array<{ id: string }>>`
        select id from chats
        where ${"vendor_id" in filter ? sql`vendor_id = ${filter.vendor_id}` : sql`true`}
          and ${"user_id" in filter ? sql`user_id = ${filter.user_id}` : sql`true`}
        order by created_at desc, id desc limit 100`;
      assert.deepEqual(listed, newest.map((chat) => chat.id));
      const which = `${JSON.stringify(filter)} with ${plan}`;
      assert.equal(reads.seqScans, 0, `${which}: a scan of all chats`);
      // each page is its 50 rows and the one that says there is a next page
      assert.ok(reads.rowsRead <= 2 * 51, `${which}: ${reads.rowsRead} rows read`);
    }
  }));
Deno.test("a user's chat list reads only that user's chats, and the last messages of one page", () =>
  onOneConnection(async (sql) => {
    await chatsWithOldParticipants(sql);
    await sql`insert into vendor_members (vendor_id, user_id, role) values ('vendor-gone', 'agent', 'agent')`;
    for (const user of ["vendor-gone", "customer-gone", "agent"]) {
      // as the server reads it, and as the user asks for it
      const lists = [
        (tx: Sql) => createPostgresStore(tx).listChatsOf(user, { limit: 20 }),
        async (tx: Sql) => {
          const answer = await createPostgresStore(tx).listChatsAsked(user, { limit: 20 });
          assert.ok("read" in answer);
          return answer.read;
        },
      ];
      for (const [index, listChats] of lists.entries()) {
        const which = `${user}${index === 0 ? "" : ", asked"}`;
        const chats = await readsOf(sql, "chats", listChats);
        const messages = await readsOf(sql, "messages", async (tx) => {
          const page = await listChats(tx);
          assert.equal(page.items.length, 20);
          assert.ok(page.items.every((chat) => chat.last_message?.content === "hello"));
        });
        assert.equal(chats.seqScans, 0, `${which}: a scan of all chats`);
        assert.ok(chats.rowsRead <= 2000 + 21, `${which}: ${chats.rowsRead} chats read`);
        assert.equal(messages.seqScans, 0, `${which}: a scan of all messages`);
        assert.ok(messages.rowsRead <= 21, `${which}: ${messages.rowsRead} messages read`);
      }
    }
  }));

Deno.test("a user's chats, joined all at once, are read by participant, not by a scan of every chat", () =>
  onOneConnection(async (sql) => {
    await chatsWithOldParticipants(sql);
    await sql`insert into vendor_members (vendor_id, user_id, role) values ('vendor-gone', 'agent', 'agent')`;
    const expected = [
      { user: "vendor-gone", side: "vendor", where: sql`vendor_id = 'vendor-gone'` },
      { user: "customer-gone", side: "customer", where: sql`user_id = 'customer-gone'` },
      { user: "agent", side: "vendor", where: sql`vendor_id = 'vendor-gone'` },
    ] as const;
    for (const [{ user, side, where }, plan] of withEachPlanMode([...expected])) {
      const joined: Array<{ id: string; side: string }> = [];
      const reads = await readsUnderPlan(sql, { table: "chats", plan }, async (tx) => {
        const memberships = await createPostgresStore(tx).chatsOf(user);
        joined.push(...memberships.map((m) => ({ id: m.chat.id, side: m.side })));
      });
      const chats = await sql<Array<{ id: string }>>`select id from chats where ${where}`;
      const which = `${user} with ${plan}`;
      assert.deepEqual(
        joined.sort((a, b) => a.id.localeCompare(b.id)),
        chats.map(({ id }) => ({ id, side })).sort((a, b) => a.id.localeCompare(b.id)),
        which,
      );
      assert.equal(reads.seqScans, 0, `${which}: a scan of all chats`);
      assert.ok(reads.rowsRead <= 2000, `${which}: ${reads.rowsRead} chats read`);
    }
  }));

Deno.test("the sweep of unsent media reads the media created since its last cutoff, not every media row ever sent", () =>
  onOneConnection(async (sql) => {
    const [chat] = await sql<[{ id: string }]>`
      insert into chats (user_id, vendor_id, last_seq) values ('alice', 'acme', 5000)
      returning id`;
    await sql`insert into media_blobs (sha256, mime_type, size)
              values (decode(repeat('ab', 32), 'hex'), 'image/png', 1)`;
    // a year of media, each sent in a message; then ten uploads of the last hour, never sent
    await sql`
      with uploaded as (
        insert into media (chat_id, uploader_id, media_type, sha256, created_at)
        select ${chat.id}, 'alice', 'image', decode(repeat('ab', 32), 'hex'),
               now() - interval '1 year' + n * interval '1 hour'
        from generate_series(1, 5000) n
        returning id, created_at
      )
      insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type, media_id)
      select ${chat.id}, row_number() over (order by created_at), 'alice', 'customer', 'acme',
             'image', id
      from uploaded`;
    await sql`
      insert into media (chat_id, uploader_id, media_type, sha256, created_at)
      select ${chat.id}, 'alice', 'image', decode(repeat('ab', 32), 'hex'),
             now() - n * interval '1 minute'
      from generate_series(1, 10) n`;
    await sql`vacuum analyze media, messages`;
    const options = {
      since: new Date(Date.now() - 2 * 3600_000),
      after: null,
      before: new Date(),
      limit: 500,
    };
    for (const [, plan] of withEachPlanMode([options])) {
      const media = await readsUnderPlan(sql, { table: "media", plan }, async (tx) => {
        assert.equal((await unsentMedia(tx, options)).length, 10);
      });
      const messages = await readsUnderPlan(sql, { table: "messages", plan }, async (tx) => {
        await unsentMedia(tx, options);
      });
      assert.equal(media.seqScans, 0, `${plan}: a scan of all media`);
      // the ten, and the one or two sent rows within the last two hours
      assert.ok(media.rowsRead <= 20, `${plan}: ${media.rowsRead} media rows read`);
      assert.equal(messages.seqScans, 0, `${plan}: a scan of all messages`);
    }
  }));
