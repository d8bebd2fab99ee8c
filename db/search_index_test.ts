import assert from "node:assert/strict";
import postgres from "postgres";
import type { NewMessage } from "../chat/ports.ts";
import { freshDatabase } from "../tests/support/database.ts";
import { insertMessageBatch } from "./insert_batch.ts";

/** gin_pending_list_limit of migration 0006, in 8 KiB pages. */
const PENDING_LIMIT_PAGES = 256 / 8;

Deno.test("the search index's pending list is merged in small steps, not megabytes at a time", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await sql`create extension if not exists pgstattuple`;
    const [chat] = await sql<[{ id: string }]>`
      insert into chats (user_id, vendor_id) values ('alice', 'acme') returning id`;
    const message = (n: number): NewMessage => ({
      chat_id: chat!.id,
      sender_id: "alice",
      sender_side: "customer",
      receiver_id: "acme",
      media_type: "text",
      // words of their own in every message, as in real text: each is a pending entry
      content: `order ${n} arrives on day ${n % 31} with parcel p${n} and invoice i${n}`,
      media_id: null,
      client_id: `c${n}`,
    });
    let largest = 0;
    for (let batch = 0; batch < 40; batch++) {
      await insertMessageBatch(
        sql,
        Array.from({ length: 100 }, (_, i) => message(batch * 100 + i)),
      );
      const [index] = await sql<[{ pending_pages: number }]>`
        select pending_pages from pgstatginindex('messages_search')`;
      largest = Math.max(largest, index!.pending_pages);
    }
    // 4,000 messages make about a megabyte of pending entries: under the default limit (4 MB)
    // they would all still be waiting for one long merge
    assert.ok(largest > 0, "the index uses its pending list");
    assert.ok(
      largest <= PENDING_LIMIT_PAGES + 1,
      `the pending list reached ${largest} pages (limit ${PENDING_LIMIT_PAGES})`,
    );
  } finally {
    await sql.end();
  }
});
