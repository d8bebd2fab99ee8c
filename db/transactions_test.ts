import assert from "node:assert/strict";
import postgres, { type Sql } from "postgres";
import { freshDatabase } from "../tests/support/database.ts";
import { startTcpProxy } from "../tests/support/tcp_proxy.ts";
import { within } from "../tests/support/wait.ts";
import { errorCode, reportLostConnectionRejections } from "./errors.ts";
import { transaction } from "./transactions.ts";

// As in the service: these tests end connections, and postgres.js rejects the array types query
// of a new connection ended meanwhile in no promise anyone waits for (fetch_types: false would
// avoid it, but then a reservation that opens a new connection is never answered, 3.4.9)
reportLostConnectionRejections(() => {});

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

const inTransaction = async (observer: Sql) =>
  (await observer<[{ count: number }]>`
    select count(*)::int as count from pg_stat_activity
    where datname = current_database() and state like 'idle in transaction%'`)[0].count;

/**
 * Resolves once no other session of the database is inside a transaction (committing or rolling
 * back included); fails after 5 s. Polled: PostgreSQL tells no one when a transaction ends.
 */
async function untilNoOpenTransaction(observer: Sql): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const [{ open }] = await observer<[{ open: number }]>`
      select count(*)::int as open from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid()
        and backend_type = 'client backend' and xact_start is not null`;
    if (open === 0) return;
    if (Date.now() > deadline) assert.fail(`${open} session(s) still in a transaction after 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Once its link is back, the pool answers a query, and the lost transaction left no note. */
async function answersAndCommittedNothing(sql: Sql): Promise<void> {
  const [row] = await within(sql<[{ answer: number }]>`select 42 as answer`, 5_000, "a query");
  assert.equal(row!.answer, 42);
  assert.deepEqual(await notes(sql), [], "the insert was not committed");
}

Deno.test("a transaction commits its work, or nothing of it when the work fails", async () => {
  await withTable(async (sql, observer) => {
    await assert.rejects(
      transaction(sql, async (tx) => {
        await tx`insert into notes values (1)`;
        assert.deepEqual(await notes(observer), [], "not visible before the commit");
        await tx`insert into notes values (1)`;
      }),
      (error: { code?: string }) => error.code === "23505",
    );
    assert.deepEqual(await notes(observer), []);
    await transaction(sql, (tx) => tx`insert into notes values (2)`);
    assert.deepEqual(await notes(observer), [2]);
    assert.equal(await inTransaction(observer), 0, "every connection was given back idle");
  });
});

Deno.test("a connection lost while a transaction's statement runs fails that transaction, not the process", async () => {
  // sql.begin sends its own rollback on the closed connection here, which postgres.js 3.4.9
  // writes to a null socket outside any promise (porsager/postgres#1208): the process dies
  await withTable(async (sql, observer) => {
    let backend!: (pid: number) => void;
    const started = new Promise<number>((resolve) => backend = resolve);
    const lost = transaction(sql, async (tx) => {
      await tx`insert into notes values (1)`;
      backend((await tx<[{ pid: number }]>`select pg_backend_pid() as pid`)[0].pid);
      await tx`select pg_sleep(5)`;
    });
    await observer`select pg_terminate_backend(${await started})`;
    await assert.rejects(lost, (error: { code?: string }) => {
      assert.ok(["57P01", "CONNECTION_CLOSED", "ECONNRESET"].includes(error.code ?? ""));
      return true;
    });
    await transaction(sql, (tx) => tx`insert into notes values (3)`);
    assert.deepEqual(await notes(observer), [3]);
  });
});

Deno.test("a connection lost while a failed transaction is rolled back is not given back to the pool", async () => {
  // Given back, the closed connection served the pool's next query: postgres.js 3.4.9 wrote it
  // to a null socket outside any promise, and the process died.
  await using database = await freshDatabase();
  await using proxy = startTcpProxy(database.url);
  const sql = postgres(proxy.url, { max: 1, onnotice: () => {} });
  try {
    await sql`create table notes (id int primary key)`;
    const stalled = Promise.withResolvers<void>();
    const failed = transaction(sql, async (tx) => {
      await tx`insert into notes values (1)`;
      // the work fails with the connection still there; the rollback is held, then cut
      proxy.stall();
      stalled.resolve();
      throw new Error("the work failed");
    });
    await stalled.promise;
    await within(proxy.held(), 5_000, "the rollback to be sent");
    await proxy.cut();
    await assert.rejects(failed, /the work failed/);
    proxy.restore();
    await answersAndCommittedNothing(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
});

Deno.test("a connection lost while a transaction's work awaits something else fails that transaction at its end, not the process", async () => {
  // The work's statements were all answered, so nothing failed with the connection; the commit
  // written after it went to a null socket outside any promise (postgres.js 3.4.9), and the
  // process died. The sweep of unsent media deletes a file's bytes (NATS, or another
  // connection) inside the transaction that holds its catalogue row.
  await using database = await freshDatabase();
  await using proxy = startTcpProxy(database.url);
  const closed = Promise.withResolvers<void>();
  const sql = postgres(proxy.url, { max: 1, onnotice: () => {}, onclose: () => closed.resolve() });
  try {
    await sql`create table notes (id int primary key)`;
    const lost = transaction(sql, async (tx) => {
      await tx`insert into notes values (1)`;
      await proxy.cut();
      await within(closed.promise, 5_000, "the pool to see its connection closed");
    });
    await assert.rejects(lost, (error) => {
      assert.equal(errorCode(error), "CONNECTION_CLOSED");
      return true;
    });
    proxy.restore();
    await answersAndCommittedNothing(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
});

Deno.test("a connection lost while a transaction's work awaits something else fails the work's next statement, not the process", async () => {
  // The sweep of unsent media deletes the bytes of up to a thousand files inside the transaction
  // that holds their catalogue rows, then deletes those rows: a connection the database ended
  // meanwhile (idle_in_transaction_session_timeout, a restart) had that statement written to a
  // null socket outside any promise (postgres.js 3.4.9), and the process died.
  await using database = await freshDatabase();
  await using proxy = startTcpProxy(database.url);
  const closed = Promise.withResolvers<void>();
  const sql = postgres(proxy.url, { max: 1, onnotice: () => {}, onclose: () => closed.resolve() });
  try {
    await sql`create table notes (id int primary key)`;
    const lost = transaction(sql, async (tx) => {
      await tx`insert into notes values (1)`;
      await proxy.cut();
      await within(closed.promise, 5_000, "the pool to see its connection closed");
      await tx`insert into notes values (${2})`;
    });
    await assert.rejects(lost, (error) => {
      assert.equal(errorCode(error), "CONNECTION_CLOSED");
      return true;
    });
    proxy.restore();
    await answersAndCommittedNothing(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
});

Deno.test("a transaction given up fails at once, and is rolled back when it answers", async () => {
  await withTable(async (sql, observer) => {
    let workDone!: () => void;
    const done = new Promise<void>((resolve) => workDone = resolve);
    const started = performance.now();
    await assert.rejects(
      transaction(sql, async (tx) => {
        await tx`insert into notes values (1)`;
        await tx`select pg_sleep(0.5)`;
        workDone();
      }, { signal: AbortSignal.timeout(200) }),
      (error: { code?: string }) => error.code === "unavailable",
    );
    assert.ok(performance.now() - started < 450, "failed before the work ended");
    await transaction(sql, (tx) => tx`insert into notes values (2)`);
    await done;
    await untilNoOpenTransaction(observer);
    assert.deepEqual(await notes(observer), [2], "the late transaction was rolled back");
    assert.equal(await inTransaction(observer), 0, "no connection is left in a transaction");
  });
});

Deno.test("a transaction given up while it waits for a connection fails, and gives the connection back when it comes", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  // the pool's one connection is taken, as a lost reservation would leave it
  const holder = await sql.reserve();
  let held = true;
  try {
    const started = performance.now();
    const outcome = await within(
      transaction(sql, (tx) => tx`select 1`, { signal: AbortSignal.timeout(200) }).then(
        () => "committed",
        (error: { code?: string }) => error.code,
      ),
      2_000,
      "the transaction to give up while the connection is taken",
    );
    assert.equal(outcome, "unavailable");
    assert.ok(performance.now() - started < 450, "failed while the connection was still taken");
    holder.release();
    held = false;
    // the late reservation was released at once: the one connection serves the next query
    const [row] = await sql<[{ answer: number }]>`select 42 as answer`;
    assert.equal(row!.answer, 42);
  } finally {
    if (held) holder.release();
    await sql.end({ timeout: 1 });
  }
});
