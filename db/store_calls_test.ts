import assert from "node:assert/strict";
import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import type { ChatStore } from "../chat/ports.ts";
import type { Chat, StoredMessage } from "../chat/types.ts";
import { freshDatabase, fromAlice } from "../tests/support/database.ts";
import { within } from "../tests/support/wait.ts";
import { hasPgBouncer, startPgBouncer } from "../tests/support/pgbouncer.ts";
import { STORE_TIMEOUT_MS, withErrorTranslation } from "./errors.ts";
import { createStoreCalls } from "./store_calls.ts";
import { withWholeResults } from "./whole_results.ts";
import { connectPool } from "./pools.ts";
import { createAdminStore } from "./admin_store.ts";
import { createPostgresStore } from "./postgres_store.ts";

const isUnavailable = (error: unknown) =>
  error instanceof ChatError && error.code === "unavailable";

Deno.test("store calls that give up on a table locked from outside cancel their statements: the pool's connections come back, and the next call is answered at once", async () => {
  await withLockedMessages(readsGiveUp);
});

Deno.test({
  name: "store calls that give up cancel their statements behind PgBouncer too",
  ignore: !hasPgBouncer(),
  async fn() {
    await withLockedMessages(readsGiveUp, { max: 2, throughPgBouncer: true });
  },
});

/** As many reads as the pool has connections (as a sweep round makes them) give up. */
async function readsGiveUp(
  { store, chat, waitingOnLock }: Pick<LockedMessages, "store" | "chat" | "waitingOnLock">,
): Promise<void> {
  const started = performance.now();
  const reads: Promise<unknown>[] = [
    store.history(chat.id, { limit: 10 }),
    store.messagesBetween(chat.id, 1, 10),
  ];
  for (const read of reads) {
    await assert.rejects(within(read, STORE_TIMEOUT_MS + 2_000, "a read"), isUnavailable);
  }
  assert.ok(performance.now() - started >= STORE_TIMEOUT_MS - 100);
  // a read of a table nobody holds gets a connection at once: the calls that gave up took
  // their statements with them
  const answered = performance.now();
  assert.equal((await within(store.getChat(chat.id), 1_000, "getChat"))?.id, chat.id);
  assert.ok(performance.now() - answered < 1_000);
  // none of the pool's connections is left waiting for the lock (a cancel request is a
  // connection of its own: it may take a moment)
  const deadline = performance.now() + 2_000;
  let waiting = await waitingOnLock();
  while (waiting > 0 && performance.now() < deadline) {
    await new Promise((next) => setTimeout(next, 50));
    waiting = await waitingOnLock();
  }
  assert.equal(waiting, 0, "statements of calls that gave up still wait for the lock");
}

Deno.test("a store call that gives up inside a transaction rolls it back and gives its connection back clean", async () => {
  await withLockedMessages(async ({ store, chat, waitingOnLock }) => {
    // the ban is written, then its audit row waits for the table locked from outside
    const ban = { user_id: "alice", moderator_id: "moderator", reason: "spam" };
    const audit = {
      action: "ban_user",
      moderator_id: "moderator",
      target_user_id: "alice",
      target_message_id: null,
      reason: "spam",
    };
    await assert.rejects(
      within(
        store.ban({ ...ban, duration_seconds: null }, { audit }),
        STORE_TIMEOUT_MS + 2_000,
        "ban",
      ),
      isUnavailable,
    );
    // the pool's one connection, out of its transaction, which left no ban
    assert.equal((await within(store.getChat(chat.id), 1_000, "getChat"))?.id, chat.id);
    assert.equal(await within(store.activeBan("alice"), 1_000, "activeBan"), null);
    assert.equal(await waitingOnLock(), 0);
  }, { max: 1, locked: "moderation_actions" });
});

Deno.test("admin store lists that give up on a table locked from outside cancel their statements too", async () => {
  await withLockedMessages(async ({ pool, chat, waitingOnLock }) => {
    const admin = createAdminStore(pool);
    await assert.rejects(
      within(
        admin.listMessages({ chat_id: chat.id, include_deleted: true, limit: 10 }),
        STORE_TIMEOUT_MS + 2_000,
        "listMessages",
      ),
      isUnavailable,
    );
    const page = await within(
      admin.listChats({ user_id: chat.user_id, limit: 10 }),
      1_000,
      "listChats",
    );
    assert.deepEqual(page.items.map((listed) => listed.id), [chat.id]);
    assert.equal(await waitingOnLock(), 0);
  }, { max: 1 });
});

Deno.test("a store method that returns its statement without awaiting it has it cancelled too", async () => {
  await using database = await freshDatabase();
  const instanceId = crypto.randomUUID();
  const pool = connectPool(database.url, { max: 1, instanceId });
  const observer = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const calls = createStoreCalls();
    const sql = withWholeResults(pool, calls);
    const store = withErrorTranslation({
      sleep: () => sql`select pg_sleep(30)`,
    }, { timeoutMs: 300, calls });
    await assert.rejects(within(store.sleep(), 2_000, "sleep"), isUnavailable);
    const deadline = performance.now() + 2_000;
    const sleeping = () =>
      observer<[{ count: number }]>`
        select count(*)::int as count from pg_stat_activity
        where application_name = ${`chat-${instanceId.slice(0, 8)}`} and state = 'active'`;
    let [{ count }] = await sleeping();
    while (count > 0 && performance.now() < deadline) {
      await new Promise((next) => setTimeout(next, 50));
      [{ count }] = await sleeping();
    }
    assert.equal(count, 0, "the statement of the call that gave up still runs");
  } finally {
    await Promise.all([observer, pool].map((sql) => sql.end({ timeout: 1 })));
  }
});

interface LockedMessages {
  pool: postgres.Sql;
  store: ChatStore;
  chat: Chat;
  message: StoredMessage;
  /** How many of the pool's backends wait for a lock. */
  waitingOnLock: () => Promise<number>;
}

/**
 * A store on a pool of `options.max` connections (as main.ts makes it, named in
 * pg_stat_activity; through a PgBouncer of its own with `throughPgBouncer`) with a chat and a
 * message, while another connection's transaction holds `messages` (or the table `locked`) in
 * ACCESS EXCLUSIVE mode (what VACUUM FULL or an operator's LOCK takes).
 */
async function withLockedMessages(
  test: (setup: LockedMessages) => Promise<void>,
  options: { max: number; throughPgBouncer?: boolean; locked?: string } = { max: 2 },
): Promise<void> {
  await using database = await freshDatabase();
  await using bouncer = options.throughPgBouncer ? await startPgBouncer(database.url) : undefined;
  const instanceId = crypto.randomUUID();
  const pool = connectPool(bouncer?.url ?? database.url, { max: options.max, instanceId });
  const other = postgres(database.url, { max: 1, onnotice: () => {} });
  const observer = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const store = createPostgresStore(pool);
    const { chat } = await store.createChat("alice", "acme");
    const { message } = await store.insertMessage(fromAlice(chat.id, "before"));
    const waitingOnLock = async () => {
      const [{ count }] = await observer<[{ count: number }]>`
        select count(*)::int as count from pg_stat_activity
        where application_name = ${`chat-${instanceId.slice(0, 8)}`} and wait_event_type = 'Lock'`;
      return count;
    };
    const locker = await other.reserve();
    try {
      await locker`begin`;
      await locker`lock table ${locker(options.locked ?? "messages")} in access exclusive mode`;
      await test({ pool, store, chat, message, waitingOnLock });
    } finally {
      await locker`rollback`;
      locker.release();
    }
  } finally {
    await Promise.all([other, observer, pool].map((sql) => sql.end({ timeout: 5 })));
  }
}
