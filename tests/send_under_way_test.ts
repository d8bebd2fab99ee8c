/**
 * A `send_message` retry that comes while the first send with its client_id is still under way
 * on the same instance, against a real PostgreSQL store whose write of the first is held back.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import type { ChatStore, InsertedMessage, MediaPort } from "../chat/ports.ts";
import { createChatService } from "../chat/service.ts";
import { createPostgresStore } from "../db/postgres_store.ts";
import { freshDatabase } from "./support/database.ts";

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

Deno.test("a retry while the first send is still being written, its receiver removed meanwhile, is answered with the stored message", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 3, onnotice: () => {} });
  try {
    const real = createPostgresStore(sql);
    const { chat } = await real.createChat("alice", "acme");
    await real.addVendorMember("acme", "agent-1", "agent");
    const { store, release, insertReached, quiet } = holdingFirstInsert(real);
    const service = createChatService({
      store,
      events: { publishChat() {}, publishUser() {} },
      now: Date.now,
      media: {} as MediaPort, // text only
    });
    const actor = { user_id: "alice", membership: await service.membership("alice", chat.id) };
    const send = {
      receiver_id: "agent-1",
      media_type: "text",
      content: "to the agent",
      media: null,
      client_id: "under-way",
    } as const;
    const first = service.sendMessage(actor, send);
    await insertReached;
    await service.removeVendorMember("acme", "agent-1");
    // the client lost the first answer and sent again (as from another socket of alice's)
    const retry = service.sendMessage(actor, send).then(
      (sent) => sent,
      (error: unknown) => error,
    );
    // whatever the retry does with the store before the first is written, it has done
    await quiet();
    release();
    const [stored, retried] = await Promise.all([first, retry]);
    assert.equal(stored.duplicate, false);
    assert.deepEqual(retried, { message: stored.message, duplicate: true });
    const [{ count }] = await sql<[{ count: number }]>`
      select count(*)::int as count from messages where chat_id = ${chat.id}`;
    assert.equal(count, 1);
  } finally {
    await sql.end();
  }
});
