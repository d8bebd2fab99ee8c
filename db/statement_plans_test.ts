import assert from "node:assert/strict";
import postgres, { type Sql } from "postgres";
import type { NewMessage } from "../chat/ports.ts";
import { freshDatabase } from "../tests/support/database.ts";
import { insertMessageBatch } from "./insert_batch.ts";
import { createPostgresStore } from "./postgres_store.ts";
import { markReadBatch } from "./read_batch.ts";
import { readUnreadWindows } from "./unread_windows.ts";

// PostgreSQL plans a prepared statement from the statistics of its first executions and keeps
// that plan. On a young database the messages table looks small then, and a join with it gets
// planned as a scan of the whole table, which costs more with every message stored until
// autovacuum next analyzes it. The group commit's statements must look messages up by index
// whatever the statistics were when they were planned, and the unread reads must go through the
// unread index whatever the statistics say about how many messages are unread.

/** How the statements `work` runs on one connection read `messages`. */
async function messageReadsOf(sql: Sql, work: (tx: Sql) => Promise<unknown>) {
  const reserved = await sql.reserve();
  try {
    // the view also counts what this connection did before and has not yet reported
    const reads = async () => {
      const [row] = await reserved<[{ seq_scan: number; idx_tup_fetch: number }]>`
        select seq_scan::int, idx_tup_fetch::int from pg_stat_xact_user_tables
        where relname = 'messages'`;
      return row!;
    };
    await reserved`begin`;
    const before = await reads();
    await work(reserved);
    const after = await reads();
    await reserved`rollback`;
    return {
      seqScans: after.seq_scan - before.seq_scan,
      rowsFetchedByIndex: after.idx_tup_fetch - before.idx_tup_fetch,
    };
  } finally {
    reserved.release();
  }
}

/** A fresh database through one connection: the statements prepared on it are the ones measured. */
async function onOneConnection(test: (sql: Sql) => Promise<void>): Promise<void> {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await test(sql);
  } finally {
    await sql.end();
  }
}

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
    const { seqScans } = await messageReadsOf(sql, async (tx) => {
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

Deno.test("the group commit's read marks look messages up by index, however small the table was when they were planned", () =>
  onOneConnection(async (sql) => {
    await youngDatabaseWithMessages(sql);
    const messages = await sql<Array<{ id: string; chat_id: string }>>`
      select id, chat_id from messages order by chat_id, seq`;
    const mark = (index: number) => ({
      chat_id: messages[index]!.chat_id,
      message_id: messages[index]!.id,
      reader_side: "vendor" as const,
      reader_id: "acme",
    });
    for (let n = 0; n < 20; n++) await markReadBatch(sql, [mark(2 * n), mark(2 * n + 1)]);
    const { seqScans } = await messageReadsOf(sql, async (tx) => {
      for (let n = 20; n < 30; n++) {
        const rows = await markReadBatch(tx, [mark(2 * n), mark(2 * n + 1), mark(0)]);
        assert.deepEqual(rows.map((row) => row.changed).sort(), [false, true, true]);
      }
    });
    assert.equal(seqScans, 0);
  }));

Deno.test("a side's unread are read from the unread index, not by walking the chat's read history", () =>
  onOneConnection(async (sql) => {
    const [chat] = await sql<[{ id: string }]>`
      insert into chats (user_id, vendor_id) values ('alice', 'acme') returning id`;
    // 5,000 messages, sides alternating, all read but the newest ten
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
    const reads = await messageReadsOf(sql, async (tx) => {
      const unread = await createPostgresStore(tx).unread(chat!.id, "customer", 50);
      assert.deepEqual(unread.messages.map((message) => message.seq), [
        4991,
        4993,
        4995,
        4997,
        4999,
      ]);
      const windows = await readUnreadWindows(tx, [{ chatId: chat!.id, side: "vendor" }]);
      assert.deepEqual(
        windows.get(`${chat!.id}:vendor`)?.messages.map((message) => message.seq),
        [4992, 4994, 4996, 4998, 5000],
      );
    });
    assert.equal(reads.seqScans, 0);
    // the five unread of each side, not the 4,990 read ones
    assert.equal(reads.rowsFetchedByIndex, 10);
  }));
