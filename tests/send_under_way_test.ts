/**
 * A `send_message` retry that comes while the first send with its client_id is still under way,
 * on the same instance or another, its receiver removed meanwhile: services over a real
 * PostgreSQL store whose write of the first is held back.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import type { ChatStore, InsertedMessage, MediaPort } from "../chat/ports.ts";
import { type Actor, createChatService } from "../chat/service.ts";
import { createPostgresStore } from "../db/postgres_store.ts";
import { freshDatabase, noneWaitingForLock, waitingForLock } from "./support/database.ts";
import { within } from "./support/wait.ts";

/**
 * `store` with its first insertMessage held until `release()`, and `quiet()`: resolves once no
 * other call of the store is under way nor about to be made by what the last ones answered.
 */
function holdingFirstInsert(store: ChatStore) {
  const underWay = new Set<Promise<unknown>>();
  const released = Promise.withResolvers<void>();
  const reached = Promise.withResolvers<void>();
  let inserts = 0;
  const counted = Object.fromEntries(
    Object.entries(store).map(([name, call]) => [name, (...args: unknown[]) => {
      const result = (call as (...args: unknown[]) => unknown)(...args);
      if (!(result instanceof Promise)) return result;
      underWay.add(result);
      const done = () => underWay.delete(result);
      result.then(done, done);
      return result;
    }]),
  ) as unknown as ChatStore;
  const held: ChatStore = {
    ...counted,
    async insertMessage(message): Promise<InsertedMessage> {
      if (inserts++ === 0) {
        reached.resolve();
        await released.promise;
      }
      return await store.insertMessage(message);
    },
  };
  async function quiet() {
    for (;;) {
      // a macrotask: what the calls' answers set off has been called by now
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (underWay.size === 0) return;
      await Promise.allSettled([...underWay]);
    }
  }
  return {
    store: held,
    release: () => released.resolve(),
    insertReached: reached.promise,
    quiet,
  };
}

/** A service (one instance) over `store`, for text messages. */
const textService = (store: ChatStore) =>
  createChatService({
    store,
    events: { publishChat() {}, publishUser() {}, published: () => Promise.resolve() },
    now: Date.now,
    media: {} as MediaPort,
  });

/** alice's message to agent-1, an agent of acme, as the first send and its retry send it. */
const toTheAgent = {
  receiver_id: "agent-1",
  media_type: "text",
  content: "to the agent",
  media: null,
  client_id: "under-way",
} as const;

/**
 * A fresh database with alice's chat with acme, whose agent agent-1 is a member to be removed;
 * `answers` runs the first send (returned) and its retry (as the service answered it, error or
 * not), then checks that one message was stored and the retry was answered with it.
 */
async function retryAfterRemoval(
  answers: (
    setup: { url: string; sql: postgres.Sql; store: ChatStore; chatId: string },
  ) => Promise<
    [first: Promise<{ message: unknown; duplicate: boolean }>, retried: unknown]
  >,
) {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  try {
    const store = createPostgresStore(sql);
    const { chat } = await store.createChat("alice", "acme");
    await store.addVendorMember("acme", "agent-1", "agent");
    const [first, retried] = await answers({
      url: database.url,
      sql,
      store,
      chatId: chat.id,
    });
    const stored = await first;
    assert.equal(stored.duplicate, false);
    assert.deepEqual(retried, { message: stored.message, duplicate: true });
    const [{ count }] = await sql<[{ count: number }]>`
      select count(*)::int as count from messages where chat_id = ${chat.id}`;
    assert.equal(count, 1);
  } finally {
    await sql.end();
  }
}

/** The service's answer, or the error it threw. */
const answered = (sending: Promise<unknown>) => sending.then((sent) => sent, (error) => error);

async function actorOf(service: ReturnType<typeof textService>, chatId: string): Promise<Actor> {
  return { user_id: "alice", membership: await service.membership("alice", chatId) };
}

Deno.test("a retry on the same instance while the first send is still being written, its receiver removed meanwhile, is answered with the stored message", async () => {
  await retryAfterRemoval(async ({ store, chatId }) => {
    const held = holdingFirstInsert(store);
    const service = textService(held.store);
    const actor = await actorOf(service, chatId);
    const first = service.sendMessage(actor, toTheAgent);
    await held.insertReached;
    await service.removeVendorMember("acme", "agent-1");
    // the client lost the first answer and sent again (as from another socket of alice's)
    const retry = answered(service.sendMessage(actor, toTheAgent));
    // whatever the retry does with the store before the first is written, it has done
    await held.quiet();
    held.release();
    return [first, await retry];
  });
});

Deno.test("a retry on another instance while the first send is still being written, its receiver removed meanwhile, is answered with the stored message", async () => {
  await retryAfterRemoval(async ({ url, sql, store, chatId }) => {
    // another instance: a store with connections of its own
    const otherSql = postgres(url, { max: 2, onnotice: () => {} });
    const here = textService(store);
    const there = textService(createPostgresStore(otherSql));
    const operator = await sql.reserve();
    try {
      // the chat's row held from outside: the first send's batch waits for it in the database
      await operator`begin`;
      await operator`select 1 from chats where id = ${chatId} for update`;
      const first = here.sendMessage(await actorOf(here, chatId), toTheAgent);
      first.catch(() => {}); // awaited by retryAfterRemoval
      await within(waitingForLock(sql), 5_000, "the first send to wait for the chat's row");
      await here.removeVendorMember("acme", "agent-1");
      const retry = answered(there.sendMessage(await actorOf(there, chatId), toTheAgent));
      // refused at once, or waiting for the first send's write to end
      await Promise.race([
        retry,
        within(waitingForLock(sql, "%", { sessions: 2 }), 5_000, "the retry to wait too"),
      ]);
      await operator`rollback`;
      return [first, await retry];
    } finally {
      operator.release();
      await otherSql.end();
    }
  });
});

Deno.test("a refused retry's wait for its chat's writes ends, and lets its connection go, while the chat's row is held from outside", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  const operator = await sql.reserve();
  try {
    const store = createPostgresStore(sql);
    const { chat } = await store.createChat("alice", "acme");
    // held for longer than any write of the service's own (a migration, an operator's session)
    await operator`begin`;
    await operator`select 1 from chats where id = ${chat.id} for update`;
    const lookup = store.messageByClientId(chat.id, "alice", "never-sent", {
      afterWritesUnderWay: true,
    });
    // answered from what is stored, not `unavailable` once the store's deadline passed
    assert.equal(await within(lookup, 15_000, "the lookup while the row is held"), null);
    // and no statement of it left waiting, holding a connection of the pool
    await noneWaitingForLock(sql, 5_000);
  } finally {
    await operator`rollback`;
    operator.release();
    await sql.end();
  }
});
