import assert from "node:assert/strict";
import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import type { AdminStore } from "../chat/ports.ts";
import { freshDatabase } from "../tests/support/database.ts";
import { within } from "../tests/support/wait.ts";
import { createAdminStore } from "./admin_store.ts";
import { startEmbeddedPostgres } from "./embedded.ts";
import { STORE_TIMEOUT_MS } from "./errors.ts";
import { migrate } from "./migrate.ts";
import { createPostgresStore } from "./postgres_store.ts";

/** The same checks on the server the service runs on and on the embedded development database. */
async function searchContract(sql: postgres.Sql) {
  const store = createPostgresStore(sql);
  const admin: AdminStore = createAdminStore(sql);
  const { chat } = await store.createChat("alice", "acme");
  for (const content of ["Grüße aus Köln", "a red lamp", "lamp", "nothing here"]) {
    await sql`
      insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type, content)
      values (${chat.id}, (select coalesce(max(seq), 0) + 1 from messages), 'alice', 'customer',
              'acme', 'text', ${content})`;
  }
  const found = async (text: string) =>
    (await admin.searchMessages({ text, include_deleted: false, limit: 10 })).items
      .map((message) => message.content);
  assert.deepEqual(await found("lamp"), ["lamp", "a red lamp"]);
  assert.deepEqual(await found("köln"), ["Grüße aus Köln"]);
  assert.deepEqual(await found("lamp -red"), ["lamp"]);
  await assert.rejects(
    found("!!!"),
    (error: unknown) => error instanceof ChatError && error.issues[0]?.path === "query",
  );
  const page = await admin.searchMessages({ text: "lamp", include_deleted: false, limit: 1 });
  assert.ok(page.next);
  const rest = await admin.searchMessages({
    text: "lamp",
    include_deleted: false,
    limit: 1,
    after: page.next,
  });
  assert.deepEqual(rest.items.map((message) => message.content), ["a red lamp"]);
  assert.equal(rest.next, null);
}

Deno.test("the admin store searches PostgreSQL with the GIN index of migration 0002", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await searchContract(sql);
    // four rows make a sequential scan cheaper; the point is that the index serves the query
    await sql`set enable_seqscan = off`;
    const plan = await sql<Array<{ "QUERY PLAN": string }>>`
      explain select id from messages
      where search_vector @@ websearch_to_tsquery('simple', 'lamp')`;
    assert.match(plan.map((row) => row["QUERY PLAN"]).join("\n"), /messages_search/);
  } finally {
    await sql.end();
  }
});

Deno.test("the embedded development database runs migration 0002 and searches the same", async () => {
  const embedded = await startEmbeddedPostgres("memory://");
  const sql = postgres(embedded.url, { max: 1, onnotice: () => {} });
  try {
    await migrate(sql);
    await searchContract(sql);
  } finally {
    await sql.end();
    await embedded.close();
  }
});

Deno.test("a search the database cannot finish in time is ended, not left holding a connection", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  const other = await sql.reserve();
  try {
    // held here, the table keeps the search running past every deadline, as millions of rows would
    await other`begin`;
    await other`lock table messages in access exclusive mode`;
    const search = createAdminStore(sql).searchMessages({
      text: "lamp",
      include_deleted: false,
      limit: 10,
    });
    await assert.rejects(
      within(search, STORE_TIMEOUT_MS + 2_000, "the search's answer"),
      (error) => error instanceof ChatError && error.code === "unavailable",
    );
    // answered once the database ended it: the pool has its connection back
    const [stillWaiting] = await other`
      select 1 from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`;
    assert.equal(stillWaiting, undefined, "the search still waits for the table");
  } finally {
    await other`rollback`;
    other.release();
    // a search left waiting still has its next statement queued on the pool
    await sql.end({ timeout: 5 });
  }
});

Deno.test("searchMessages pages every match once on a database whose extra_float_digits is 0", async () => {
  // With extra_float_digits 0 (or less) PostgreSQL writes a real with 6 digits, too few to name a
  // rank exactly: a page's rank, read back as the next page's cursor, was another real
  await using database = await freshDatabase();
  const admin = postgres(database.url, { max: 1, onnotice: () => {} });
  const name = new URL(database.url).pathname.slice(1);
  await admin.unsafe(`alter database ${name} set extra_float_digits = 0`);
  await admin.end();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    const search: AdminStore = createAdminStore(sql);
    const { chat } = await store.createChat("alice", "acme");
    const contents = ["a red lamp", "a red lamp!", "a red lamp.", "the red lamp", "one red lamp"];
    for (const [index, content] of contents.entries()) {
      await sql`
        insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type,
                              content)
        values (${chat.id}, ${index + 1}, 'alice', 'customer', 'acme', 'text', ${content})`;
    }
    const seen: string[] = [];
    let after;
    for (let page = 0; page < contents.length + 2; page++) {
      const { items, next } = await search.searchMessages({
        text: "lamp",
        include_deleted: false,
        limit: 1,
        ...(after === undefined ? {} : { after }),
      });
      seen.push(...items.map((message) => message.content ?? ""));
      if (next === null) break;
      after = next;
    }
    assert.deepEqual([...seen].sort(), [...contents].sort());
  } finally {
    await sql.end();
  }
});

Deno.test("search and list pages keep rows made within one millisecond: a cursor's microseconds are not cut", async () => {
  // postgres.js sends a timestamptz parameter through a JavaScript Date, which keeps
  // milliseconds: a cursor at 00.000300 went as 00.000, and the rows at 00.000200 and 00.000100
  // were on no page (a group commit, or a bulk import, stores rows within one millisecond)
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  try {
    const admin: AdminStore = createAdminStore(sql);
    const created = ["00.000100", "00.000200", "00.000300"].map((s) => `2026-01-01 00:00:${s}+00`);
    const chatIds: string[] = [];
    for (const [index, at] of created.entries()) {
      const [chat] = await sql<[{ id: string }]>`
        insert into chats (user_id, vendor_id, created_at, updated_at)
        values (${`user-${index}`}, 'acme', ${at}::text::timestamptz, ${at}::text::timestamptz)
        returning id`;
      chatIds.push(chat.id);
      await sql`
        insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type,
                              content, created_at)
        values (${chat.id}, 1, ${`user-${index}`}, 'customer', 'acme', 'text', 'a red lamp',
                ${at}::text::timestamptz)`;
    }
    const pages = async <T>(
      read: (after: unknown) => Promise<{ items: T[]; next: unknown }>,
    ): Promise<T[]> => {
      const seen: T[] = [];
      let after: unknown;
      for (let page = 0; page < 5; page++) {
        const { items, next } = await read(after);
        seen.push(...items);
        if (next === null) break;
        after = next;
      }
      return seen;
    };
    const found = await pages((after) =>
      admin.searchMessages({
        text: "lamp",
        include_deleted: false,
        limit: 1,
        ...(after === undefined ? {} : { after: after as never }),
      })
    );
    assert.deepEqual(found.map((message) => message.chat_id), [...chatIds].reverse(), "search");
    const listed = await pages((after) =>
      admin.listChats({
        vendor_id: "acme",
        limit: 1,
        ...(after === undefined ? {} : { after: after as never }),
      })
    );
    assert.deepEqual(listed.map((chat) => chat.id), [...chatIds].reverse(), "ListChats");
  } finally {
    await sql.end();
  }
});
