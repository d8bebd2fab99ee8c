import assert from "node:assert/strict";
import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import type { ChatStore, NewMessage } from "../chat/ports.ts";
import type { Chat } from "../chat/types.ts";
import { freshDatabase, fromAlice } from "../tests/support/database.ts";
import { within } from "../tests/support/wait.ts";
import { lockedChats, WRITER_LOCK_TIMEOUT_MS } from "./locked_chats.ts";
import { writerLaneOf } from "./writer_lanes.ts";
import { connectPool } from "./pools.ts";
import { createPostgresStore } from "./postgres_store.ts";

const isUnavailable = (error: unknown) =>
  error instanceof ChatError && error.code === "unavailable";

Deno.test("lockedChats names the chats whose row another transaction holds, and only those", async () => {
  await withLockedChat(async ({ sql, locked, free }) => {
    const rows = await lockedChats(sql, [locked.id, free.id]);
    assert.deepEqual(rows.map((row) => row.id), [locked.id]);
  });
});

Deno.test("a batch with a message to a chat locked from outside writes the others at once and refuses that one, which its retry stores once the lock is gone", async () => {
  await withLockedChat(async ({ sql, store, locked, free, release }) => {
    const inFree = (content: string, clientId: string): NewMessage => ({
      ...fromAlice(free.id, content, clientId),
      sender_id: free.user_id,
    });
    // the first is written alone; the other two wait for it and go in one batch
    const started = performance.now();
    const [first, refused, second] = [
      store.insertMessage(inFree("first", "f1")),
      store.insertMessage(fromAlice(locked.id, "while locked", "l1")),
      store.insertMessage(inFree("second", "f2")),
    ];
    refused.catch(() => {}); // awaited below
    // each chat has one message from before
    assert.equal((await first).message.seq, 2);
    assert.equal((await within(second, 2_000, "the free chat's second message")).message.seq, 3);
    await assert.rejects(within(refused, 2_000, "the locked chat's answer"), isUnavailable);
    const took = performance.now() - started;
    assert.ok(took < WRITER_LOCK_TIMEOUT_MS + 1_000, `answered after ${Math.round(took)} ms`);
    await release();
    const retried = await store.insertMessage(fromAlice(locked.id, "while locked", "l1"));
    assert.deepEqual([retried.duplicate, retried.message.seq], [false, 2]);
    const rows = await sql<Array<{ chat_id: string; seq: number; content: string }>>`
      select chat_id, seq, content from messages order by chat_id = ${free.id}, seq`;
    assert.deepEqual(rows.map((row) => [row.chat_id, row.seq, row.content]), [
      [locked.id, 1, "before"],
      [locked.id, 2, "while locked"],
      [free.id, 1, "before"],
      [free.id, 2, "first"],
      [free.id, 3, "second"],
    ]);
  });
});

Deno.test("a batch tried one message at a time, with one to a chat locked from outside, refuses that one after the writer's lock timeout and writes the others", async () => {
  await withLockedChat(async ({ store, locked, free, release }) => {
    const inFree = (content: string): NewMessage => ({
      ...fromAlice(free.id, content),
      sender_id: free.user_id,
    });
    // the first is written alone; the other three wait for it and go in one batch, which the
    // database refuses for the NUL, so that each is tried alone
    const first = store.insertMessage(inFree("first"));
    const started = performance.now();
    const [refusedText, refusedLocked, second] = [
      store.insertMessage(inFree("nul \u0000 inside")),
      store.insertMessage(fromAlice(locked.id, "while locked", "l1")),
      store.insertMessage(inFree("second")),
    ];
    refusedText.catch(() => {}); // awaited below
    refusedLocked.catch(() => {}); // awaited below
    assert.equal((await first).message.seq, 2);
    assert.equal((await within(second, 2_000, "the free chat's second message")).message.seq, 3);
    const took = performance.now() - started;
    assert.ok(took < WRITER_LOCK_TIMEOUT_MS + 1_000, `answered after ${Math.round(took)} ms`);
    await assert.rejects(refusedText, (error) => error instanceof ChatError);
    await assert.rejects(within(refusedLocked, 1_000, "the locked chat's answer"), isUnavailable);
    await release();
    const retried = await store.insertMessage(fromAlice(locked.id, "while locked", "l1"));
    assert.deepEqual([retried.duplicate, retried.message.seq], [false, 2]);
  });
});

Deno.test("a batch tried one message at a time with several to a chat locked from outside waits for that chat once, not once for each", async () => {
  // longer than the writer's, so that one wait and three are far apart on a busy machine
  const lockTimeoutMs = 1_200;
  await withLockedChat(async ({ store, locked, free }) => {
    const inFree = (content: string): NewMessage => ({
      ...fromAlice(free.id, content),
      sender_id: free.user_id,
    });
    // the first is written alone; the others wait for it and go in one batch, which the
    // database refuses for the NUL, so that each is tried alone
    const first = store.insertMessage(inFree("first"));
    const refused = [
      store.insertMessage(inFree("nul \u0000 inside")),
      ...["l1", "l2", "l3"].map((clientId) =>
        store.insertMessage(fromAlice(locked.id, "while locked", clientId))
      ),
    ];
    const second = store.insertMessage(inFree("second"));
    for (const answer of refused) answer.catch(() => {}); // awaited below
    await first;
    const started = performance.now();
    assert.equal(
      (await within(second, 4 * lockTimeoutMs, "the free chat's message")).message.seq,
      3,
    );
    const took = performance.now() - started;
    assert.ok(took < 1.75 * lockTimeoutMs, `answered after ${Math.round(took)} ms`);
    for (const answer of refused.slice(1)) {
      await assert.rejects(within(answer, 1_000, "a locked chat's message"), isUnavailable);
    }
  }, { lockTimeoutMs });
});

Deno.test("a batch of read marks with one in a chat locked from outside marks the others and refuses that one", async () => {
  await withLockedChat(async ({ sql, store, locked, free, release }, before) => {
    const { lockedMessage, freeMessage } = before;
    // a message keeps the lane busy, so that both marks go in the next batch
    const busy = store.insertMessage({ ...fromAlice(free.id, "busy"), sender_id: free.user_id });
    const refused = store.markRead(locked.id, lockedMessage, "vendor", locked.vendor_id);
    const marked = store.markRead(free.id, freeMessage, "vendor", free.vendor_id);
    refused.catch(() => {}); // awaited below
    await busy;
    assert.equal((await within(marked, 2_000, "the free chat's mark"))?.changed, true);
    await assert.rejects(within(refused, 2_000, "the locked chat's mark"), isUnavailable);
    await release();
    const [{ is_read }] = await sql<[{ is_read: boolean }]>`
      select is_read from messages where id = ${lockedMessage}`;
    assert.equal(is_read, false, "a mark answered unavailable was written");
    const again = await store.markRead(locked.id, lockedMessage, "vendor", locked.vendor_id);
    assert.equal(again?.changed, true);
  });
});

Deno.test("a chat locked from outside with marks and messages waiting costs its lane one lock wait, not one for the marks and another for the messages", async () => {
  // longer than the writer's, so that one wait and two are far apart on a busy machine
  const lockTimeoutMs = 1_200;
  await withLockedChat(async ({ store, locked, free }, before) => {
    // a message keeps the lane busy, so that the mark and both messages go in its next round
    const busy = store.insertMessage({ ...fromAlice(free.id, "busy"), sender_id: free.user_id });
    const refusedMark = store.markRead(locked.id, before.lockedMessage, "vendor", locked.vendor_id);
    const refusedSend = store.insertMessage(fromAlice(locked.id, "while locked", "l1"));
    const sent = store.insertMessage({ ...fromAlice(free.id, "after"), sender_id: free.user_id });
    refusedMark.catch(() => {}); // awaited below
    refusedSend.catch(() => {}); // awaited below
    await busy;
    const started = performance.now();
    assert.equal((await within(sent, 3 * lockTimeoutMs, "the free chat's message")).message.seq, 3);
    const took = performance.now() - started;
    assert.ok(took < 1.75 * lockTimeoutMs, `answered after ${Math.round(took)} ms`);
    await assert.rejects(within(refusedMark, 1_000, "the locked chat's mark"), isUnavailable);
    await assert.rejects(within(refusedSend, 1_000, "the locked chat's message"), isUnavailable);
  }, { lockTimeoutMs });
});

/**
 * A store whose writer runs as main.ts runs it (connections of its own with the writer's
 * lock_timeout, or `options.lockTimeoutMs`), two chats of one writer lane with a message each (seq 1, unread), and another connection's
 * transaction holding the first chat's row until `release`.
 */
async function withLockedChat(
  test: (
    setup: {
      sql: postgres.Sql;
      store: ChatStore;
      locked: Chat;
      free: Chat;
      release: () => Promise<void>;
    },
    before: { lockedMessage: string; freeMessage: string },
  ) => Promise<void>,
  options: { lockTimeoutMs: number } = { lockTimeoutMs: WRITER_LOCK_TIMEOUT_MS },
): Promise<void> {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  const writerSql = connectPool(database.url, {
    max: 2,
    instanceId: crypto.randomUUID(),
    lockTimeoutMs: options.lockTimeoutMs,
  });
  const other = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql, writerSql);
    const { chat: locked } = await store.createChat("alice", "acme");
    let free: Chat | undefined;
    for (let index = 0; !free && index < 40; index++) {
      const { chat } = await store.createChat(`customer-${index}`, "acme");
      if (writerLaneOf(chat.id) === writerLaneOf(locked.id)) free = chat;
    }
    assert.ok(free, "no chat in the same lane");
    const before = {
      lockedMessage: (await store.insertMessage(fromAlice(locked.id, "before"))).message.id,
      freeMessage: (await store.insertMessage({
        ...fromAlice(free.id, "before"),
        sender_id: free.user_id,
      })).message.id,
    };
    const transaction = await other.reserve();
    let held = true;
    const release = async () => {
      if (!held) return;
      held = false;
      await transaction`rollback`;
    };
    try {
      await transaction`begin`;
      await transaction`select 1 from chats where id = ${locked.id} for update`;
      await test({ sql, store, locked, free, release }, before);
    } finally {
      await release();
      transaction.release();
    }
  } finally {
    // with a time limit: a pool that ends while one of its reservations is still in use (a
    // test that failed early) can wait for ever, and the failure would never be reported
    await Promise.all([other, writerSql, sql].map((pool) => pool.end({ timeout: 5 })));
  }
}
