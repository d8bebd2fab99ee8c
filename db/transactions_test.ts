import assert from "node:assert/strict";
import postgres, { type Sql } from "postgres";
import { freshDatabase } from "../tests/support/database.ts";
import { createTransactionChain } from "./transactions.ts";

async function withTable(test: (sql: Sql, observer: Sql) => Promise<void>): Promise<void> {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  const observer = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await sql`create table notes (id int primary key)`;
    await test(sql, observer);
  } finally {
    // a pool that lost a connection mid-query never ends on its own (postgres.js 3.4.9)
    await Promise.all([sql.end({ timeout: 1 }), observer.end()]);
  }
}

const notes = async (observer: Sql) =>
  (await observer<{ id: number }[]>`select id from notes order by id`).map((row) => row.id);

Deno.test("a chained transaction is committed when run returns, and the next is its own transaction", async () => {
  await withTable(async (sql, observer) => {
    const chain = createTransactionChain(sql);
    try {
      const first = await chain.run(async (tx) => {
        await tx`insert into notes values (1)`;
        return (await tx<{ xid: string }[]>`select txid_current()::text as xid`)[0]!.xid;
      }, () => true);
      assert.deepEqual(await notes(observer), [1], "committed before the next transaction");
      await chain.run(async (tx) => {
        await tx`insert into notes values (2)`;
        const [{ xid }] = await tx<[{ xid: string }]>`select txid_current()::text as xid`;
        assert.notEqual(xid, first);
        assert.deepEqual(await notes(observer), [1], "not visible before its commit");
      }, () => false);
      assert.deepEqual(await notes(observer), [1, 2]);
    } finally {
      await chain.release();
    }
  });
});

Deno.test("a failed transaction of a chain writes nothing and the chain goes on", async () => {
  await withTable(async (sql, observer) => {
    const chain = createTransactionChain(sql);
    try {
      await assert.rejects(
        chain.run(async (tx) => {
          await tx`insert into notes values (1)`;
          await tx`insert into notes values (1)`;
        }, () => true),
        (error: { code?: string }) => error.code === "23505",
      );
      assert.deepEqual(await notes(observer), []);
      await chain.run((tx) => tx`insert into notes values (2)`, () => false);
      assert.deepEqual(await notes(observer), [2]);
    } finally {
      await chain.release();
    }
  });
});

Deno.test("release ends a transaction opened for work that never came and returns an idle connection", async () => {
  await withTable(async (sql, observer) => {
    const chain = createTransactionChain(sql);
    const pid = await chain.run(async (tx) => {
      await tx`insert into notes values (1)`;
      return (await tx<[{ pid: number }]>`select pg_backend_pid() as pid`)[0].pid;
    }, () => true);
    const stateOf = async () =>
      (await observer<[{ state: string }]>`
        select state from pg_stat_activity where pid = ${pid}`)[0].state;
    assert.equal(await stateOf(), "idle in transaction");
    await chain.release();
    assert.equal(await stateOf(), "idle");
    assert.deepEqual(await notes(observer), [1]);
  });
});

Deno.test("a connection lost while a statement of a chain runs fails that run, not the process, and the next runs on a new one", async () => {
  // sql.begin sends its own rollback on the closed connection here, which postgres.js 3.4.9
  // writes to a null socket outside any promise (porsager/postgres#1208): the process dies
  await withTable(async (sql, observer) => {
    const chain = createTransactionChain(sql);
    try {
      const backendOf = async (tx: Sql) =>
        (await tx<[{ pid: number }]>`select pg_backend_pid() as pid`)[0].pid;
      const first = await chain.run(backendOf, () => true);
      const lost = chain.run(async (tx) => {
        await tx`insert into notes values (1)`;
        await tx`select pg_sleep(5)`;
      }, () => true);
      await observer`select pg_terminate_backend(${first})`;
      await assert.rejects(lost, (error: { code?: string }) => {
        assert.ok(["57P01", "CONNECTION_CLOSED", "ECONNRESET"].includes(error.code ?? ""));
        return true;
      });
      const second = await chain.run(async (tx) => {
        await tx`insert into notes values (3)`;
        return await backendOf(tx);
      }, () => false);
      assert.notEqual(second, first);
      assert.deepEqual(await notes(observer), [3]);
    } finally {
      await chain.release();
    }
  });
});

Deno.test("a chained transaction past its time fails at once, is rolled back when it answers, and the chain goes on", async () => {
  await withTable(async (sql, observer) => {
    const chain = createTransactionChain(sql, { timeoutMs: 200 });
    try {
      let workDone!: () => void;
      const done = new Promise<void>((resolve) => workDone = resolve);
      const started = performance.now();
      await assert.rejects(
        chain.run(async (tx) => {
          await tx`insert into notes values (1)`;
          await tx`select pg_sleep(0.5)`;
          workDone();
        }, () => true),
        (error: { code?: string }) => error.code === "unavailable",
      );
      assert.ok(performance.now() - started < 450, "failed before the work ended");
      await chain.run((tx) => tx`insert into notes values (2)`, () => false);
      await done;
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(await notes(observer), [2], "the late transaction was rolled back");
      const [{ busy }] = await observer<[{ busy: number }]>`
        select count(*)::int as busy from pg_stat_activity
        where datname = current_database() and state like 'idle in transaction%'`;
      assert.equal(busy, 0, "no connection is left in a transaction");
    } finally {
      await chain.release();
    }
  });
});
