import assert from "node:assert/strict";
import postgres from "postgres";
import { connectPool, connectWriterPool } from "./pools.ts";
import { freshDatabase, TEST_DATABASE_URL } from "../tests/support/database.ts";
import { hasPgBouncer, startPgBouncer } from "../tests/support/pgbouncer.ts";
import { startTcpProxy } from "../tests/support/tcp_proxy.ts";
import { within } from "../tests/support/wait.ts";
import { cancelStatement } from "./statement_deadline.ts";
import { createStoreCalls } from "./store_calls.ts";
import { withWholeResults } from "./whole_results.ts";

/** What connectWriterPool reported missing: the lock_timeout in effect, and the refusal's message. */
type Report = { inEffectMs: number; refusal: string | undefined };

/** connectWriterPool with a lock timeout of 500 ms, what it reports missing kept in `reports`. */
function writerPool(url: string, reports: Report[]) {
  return connectWriterPool(url, {
    max: 1,
    instanceId: crypto.randomUUID(),
    lockTimeoutMs: 500,
    onLockTimeoutMissing: ({ inEffectMs, refusal }) =>
      reports.push({ inEffectMs, refusal: refusal?.message }),
  });
}

/**
 * The lock_timeout a connection of connectWriterPool's pool on `url` has, as `show` spells it,
 * and what the pool reported missing as it opened.
 */
async function writerLockTimeout(url: string) {
  const reports: Report[] = [];
  const sql = await writerPool(url, reports);
  try {
    const [row] = await sql<[{ lock_timeout: string }]>`show lock_timeout`;
    return { lockTimeout: row.lock_timeout, reports };
  } finally {
    await sql.end();
  }
}

Deno.test("connectWriterPool() on a server that takes lock_timeout keeps it, and reports nothing", async () => {
  const { lockTimeout, reports } = await writerLockTimeout(TEST_DATABASE_URL);
  assert.equal(lockTimeout, "500ms");
  assert.deepEqual(reports, []);
});

Deno.test({
  name:
    "connectWriterPool() behind PgBouncer, which refuses lock_timeout, reports the refusal once and gives a pool without it",
  ignore: !hasPgBouncer(),
  async fn() {
    await using bouncer = await startPgBouncer(TEST_DATABASE_URL);
    const { lockTimeout, reports } = await writerLockTimeout(bouncer.url);
    assert.equal(lockTimeout, "0");
    assert.deepEqual(reports, [
      { inEffectMs: 0, refusal: "unsupported startup parameter: lock_timeout" },
    ]);
  },
});

Deno.test({
  name:
    "connectWriterPool() behind PgBouncer told to ignore lock_timeout, which drops it, reports that its connections run without it",
  ignore: !hasPgBouncer(),
  async fn() {
    await using bouncer = await startPgBouncer(TEST_DATABASE_URL, {
      ignore_startup_parameters: "lock_timeout",
    });
    const { lockTimeout, reports } = await writerLockTimeout(bouncer.url);
    assert.equal(lockTimeout, "0");
    assert.deepEqual(reports, [{ inEffectMs: 0, refusal: undefined }]);
  },
});

Deno.test({
  name:
    "connectWriterPool() behind PgBouncer, which refuses lock_timeout, reports nothing when the database gives its connections that lock_timeout",
  ignore: !hasPgBouncer(),
  async fn() {
    await using database = await freshDatabase();
    const admin = postgres(database.url, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(
        `alter database ${new URL(database.url).pathname.slice(1)} set lock_timeout = 500`,
      );
    } finally {
      await admin.end();
    }
    await using bouncer = await startPgBouncer(database.url);
    const { lockTimeout, reports } = await writerLockTimeout(bouncer.url);
    assert.equal(lockTimeout, "500ms");
    assert.deepEqual(reports, []);
  },
});

Deno.test("connectWriterPool() throws any other refusal, unreported", async () => {
  const missing = new URL(TEST_DATABASE_URL);
  missing.pathname = `/chat_missing_${crypto.randomUUID().replaceAll("-", "")}`;
  const reports: Report[] = [];
  await assert.rejects(
    writerPool(missing.toString(), reports),
    (error) => error instanceof postgres.PostgresError && error.code === "3D000",
  );
  assert.deepEqual(reports, []);
});

/**
 * The time a pool of connectPool, and one of connectWriterPool, on `url` read for 7 December
 * 2026, while `url`'s database has a DateStyle that writes times otherwise than ISO 8601.
 */
async function timesReadUnderDateStyle(databaseUrl: string, url: string, dateStyle: string) {
  const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const name = new URL(databaseUrl).pathname.slice(1);
  await admin.unsafe(`alter database ${name} set datestyle = '${dateStyle}'`);
  await admin.end();
  const pool = connectPool(url, { max: 1, instanceId: crypto.randomUUID() });
  const writer = await writerPool(url, []);
  try {
    const read = async (sql: postgres.Sql) => {
      const [row] = await sql<[{ at: Date }]>`
        select '2026-12-07 08:09:10.123+00'::timestamptz as at`;
      return Number.isNaN(row.at.getTime()) ? "Invalid Date" : row.at.toISOString();
    };
    return [await read(pool), await read(writer)];
  } finally {
    await pool.end();
    await writer.end();
  }
}

for (const dateStyle of ["SQL, DMY", "German"]) {
  Deno.test(`pools read times right from a database whose DateStyle is ${dateStyle}`, async () => {
    await using database = await freshDatabase();
    assert.deepEqual(
      await timesReadUnderDateStyle(database.url, database.url, dateStyle),
      ["2026-12-07T08:09:10.123Z", "2026-12-07T08:09:10.123Z"],
    );
  });
}

Deno.test({
  name: "pools read times right behind PgBouncer from a database whose DateStyle is SQL, DMY",
  ignore: !hasPgBouncer(),
  async fn() {
    await using database = await freshDatabase();
    await using bouncer = await startPgBouncer(database.url);
    assert.deepEqual(
      await timesReadUnderDateStyle(database.url, bouncer.url, "SQL, DMY"),
      ["2026-12-07T08:09:10.123Z", "2026-12-07T08:09:10.123Z"],
    );
  },
});

Deno.test("a writer pool's statement given up while it waits behind one the database has not answered takes no other statement's rows", async () => {
  await using database = await freshDatabase();
  await using proxy = startTcpProxy(database.url);
  const sql = await writerPool(proxy.url, []);
  try {
    await sql`select 1`;
    // the database stalls (a partition, a hung server): the statements wait on the connection
    proxy.stall();
    const answer = (query: postgres.PendingQuery<Array<{ answer: string }>>) =>
      query.then(([row]) => row!.answer, (error) => `error ${error.code}`);
    const first = sql<Array<{ answer: string }>>`select 'first' as answer`;
    const second = sql<Array<{ answer: string }>>`select 'second' as answer`;
    const third = sql<Array<{ answer: string }>>`select 'third' as answer`;
    const answers = [first, second, third].map(answer);
    await proxy.held();
    // given up by its caller, as a writer batch past its time is (batch_writes.ts): a plain
    // cancel() of it gave the third statement its rows ('second' !== 'third')
    cancelStatement(second);
    proxy.restore();
    // the second runs in its turn, its answer for no one
    await assertAnswers(answers, ["first", "second", "third"]);
  } finally {
    await sql.end({ timeout: 1 });
  }
});

Deno.test("a main pool's statement given up by its store call while it waits behind one the database has not answered takes no other statement's rows", async () => {
  // the main pool pipelines; it serves history pages, unread counts and admin queries, and a
  // store call given up at STORE_TIMEOUT_MS cancels its statements: another's rows would be
  // another user's chat
  await using database = await freshDatabase();
  await using proxy = startTcpProxy(database.url);
  const pool = connectPool(proxy.url, { max: 1, instanceId: crypto.randomUUID() });
  const calls = createStoreCalls();
  const sql = withWholeResults(pool, calls);
  try {
    const call = (name: string, signal: AbortSignal) =>
      calls.run(signal, async () => {
        const [row] = await sql<Array<{ answer: string }>>`select ${name}::text as answer`;
        return row!.answer;
      }).catch((error) => `error ${error.code}`);
    // prepared, as a store's statements are after their first use: postgres.js pipelines a
    // statement with parameters only once it has described it
    assert.equal(await call("prepared", new AbortController().signal), "prepared");
    proxy.stall();
    const givenUp = new AbortController();
    const answers = [
      call("first", new AbortController().signal),
      call("second", givenUp.signal),
      call("third", new AbortController().signal),
    ];
    await proxy.held();
    givenUp.abort();
    proxy.restore();
    // the second, sent before its call gave up, runs in its turn (see cancelStatement)
    await assertAnswers(answers, ["first", "second", "third"]);
  } finally {
    await pool.end({ timeout: 1 });
  }
});

/**
 * Each of `answers` is `expected`'s, within 5 s: the third before the second, whose rows it may
 * take.
 */
async function assertAnswers(answers: Promise<string>[], expected: string[]) {
  assert.equal(await within(answers[0]!, 5_000, "the first answer"), expected[0]);
  assert.equal(await within(answers[2]!, 5_000, "the third answer"), expected[2]);
  assert.equal(await within(answers[1]!, 5_000, "the second answer"), expected[1]);
}
