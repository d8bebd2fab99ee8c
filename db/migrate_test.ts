import assert from "node:assert/strict";
import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import { TEST_DATABASE_URL } from "../tests/support/database.ts";
import { startTcpProxy } from "../tests/support/tcp_proxy.ts";
import { within } from "../tests/support/wait.ts";
import { errorCode } from "./errors.ts";
import { migrate, MIGRATION_LOCK_KEY, readMigrations, statementsOf } from "./migrate.ts";

async function emptyDatabase() {
  const name = `chat_m_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async [Symbol.asyncDispose]() {
      const cleanup = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
      await cleanup.unsafe(`drop database if exists ${name} with (force)`);
      await cleanup.end();
    },
  };
}

/** Resolves once a statement containing `text` waits for a lock (within 5 s). */
async function waitingForLock(sql: postgres.Sql, text: string, what: string): Promise<void> {
  await within(
    (async () => {
      for (;;) {
        const [waiting] = await sql`
          select 1 from pg_stat_activity
          where datname = current_database() and query ilike ${`%${text}%`}
            and wait_event_type = 'Lock'
            and pid <> pg_backend_pid()`;
        if (waiting) return;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })(),
    5_000,
    `${what} to wait for a lock`,
  );
}

/**
 * A database migrated up to `version` (not included), with one chat; `sql` has two connections
 * and `open` holds one of them for a transaction left open, `migrator` is the next start's pool.
 */
async function migratedBefore(version: number) {
  const database = await emptyDatabase();
  const all = await readMigrations();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  const migrator = postgres(database.url, { max: 1, onnotice: () => {} });
  await migrate(sql, all.filter((migration) => migration.version < version));
  const [chat] = await sql<[{ id: string }]>`
    insert into chats (user_id, vendor_id) values ('c', 'v') returning id`;
  const open = await sql.reserve();
  return {
    url: database.url,
    all,
    /** The versions the next migrate() applies: `version` and every later one. */
    pending: all.filter((migration) => migration.version >= version).map((m) => m.version),
    sql,
    migrator,
    open,
    chatId: chat.id,
    /** Stores message `seq` of the chat, on `open` when given (in its transaction). */
    send: (seq: number, on: postgres.Sql | postgres.ReservedSql = sql) =>
      on`insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type,
                               content)
         values (${chat.id}, ${seq}, 'c', 'customer', 'v', 'text', ${`m${seq}`})`,
    async [Symbol.asyncDispose]() {
      // a failed assertion leaves the open transaction open, and everything queued behind it
      await open.unsafe("rollback");
      open.release();
      await sql.end();
      // a migration still running after a failed assertion is cut off
      await migrator.end({ timeout: 5 });
      await database[Symbol.asyncDispose]();
    },
  };
}

Deno.test("migrate() applies each migration once when two instances start together", async () => {
  await using database = await emptyDatabase();
  const first = postgres(database.url, { max: 1, onnotice: () => {} });
  const second = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const [a, b] = await Promise.all([migrate(first), migrate(second)]);
    const all = (await readMigrations()).map((m) => m.version);
    assert.deepEqual([...a, ...b].sort((x, y) => x - y), all);
    const rows = await first<{ version: number }[]>`
      select version from schema_migrations order by version`;
    assert.deepEqual(rows.map((row) => row.version), all);
    assert.deepEqual(await migrate(first), []);
  } finally {
    await first.end();
    await second.end();
  }
});

Deno.test("readMigrations() returns the migration files in version order", async () => {
  const migrations = await readMigrations();
  assert.ok(migrations.length > 0);
  const versions = migrations.map((m) => m.version);
  assert.deepEqual(versions, [...versions].sort((x, y) => x - y));
  assert.equal(new Set(versions).size, versions.length);
});

Deno.test("readMigrations() refuses two files of one version, naming both", async () => {
  // two branches that each added their next migration, merged: the second of them would fail
  // on its record, and then be taken for applied at every later start
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/0001_chats.sql`, "create table chats ()");
    await Deno.writeTextFile(`${dir}/0002_notes.sql`, "create table notes ()");
    await Deno.writeTextFile(`${dir}/0002_tags.sql`, "create table tags ()");
    await assert.rejects(
      readMigrations(new URL(`file://${dir}/`)),
      (error: Error) => {
        assert.match(
          error.message,
          /^two migrations of version 2: 0002_notes\.sql, 0002_tags\.sql/,
        );
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("migrate() gives up with unavailable when the database never answers, instead of waiting for ever", async () => {
  await using proxy = startTcpProxy(TEST_DATABASE_URL);
  // connections are taken, and nothing the client sends gets through: a host that drops packets
  proxy.stall();
  const sql = postgres(proxy.url, { max: 1, onnotice: () => {} });
  try {
    await assert.rejects(
      within(migrate(sql, [], { firstAnswerMs: 300 }), 5_000, "migrate() to give up"),
      (error) =>
        error instanceof ChatError && error.code === "unavailable" &&
        error.message.includes(`127.0.0.1:${proxy.port} did not answer within 0.3 s`),
    );
  } finally {
    proxy.restore();
    await sql.end({ timeout: 1 });
  }
});

Deno.test("statementsOf() splits a migration at each semicolon that ends a line, without comments", () => {
  const text = [
    "-- migrate: without transaction",
    "-- why; in a comment",
    "alter table t add column if not exists x text;",
    "",
    "create index concurrently i on t (a) where b = ';';  ",
    "drop index concurrently if exists j",
  ].join("\n");
  assert.deepEqual(statementsOf(text), [
    "alter table t add column if not exists x text",
    "create index concurrently i on t (a) where b = ';'",
    "drop index concurrently if exists j",
  ]);
});

Deno.test("migration 0009 builds its index without holding off sends: a message is stored while the build waits", async () => {
  await using database = await migratedBefore(9);
  const { sql, open } = database;
  // a send in flight: its transaction has written and not committed, and the build waits for it
  await open.unsafe("begin");
  await database.send(1, open);
  const migrating = migrate(database.migrator, database.all);
  await waitingForLock(sql, "create index concurrently messages_read", "the index build");
  // the next send does not queue behind the build
  await within(database.send(2), 2_000, "a send while the index is built");
  await open.unsafe("commit");
  assert.deepEqual(await migrating, database.pending);
  const [index] = await sql<[{ valid: boolean }]>`
    select indisvalid as valid from pg_index where indexrelid = 'messages_read'::regclass`;
  assert.equal(index.valid, true);
});

// The earlier migrations that index a table every send writes: built concurrently too, so that
// a database migrated from before one of them keeps taking messages while it scans.
const earlierIndexBuilds = [
  [3, "messages_by_media"],
  [5, "chats_by_user"],
  [7, "messages_amended"],
] as const;
for (const [version, index] of earlierIndexBuilds) {
  Deno.test(`migration ${String(version).padStart(4, "0")} builds its index without holding off sends: a message is stored while the build waits`, async () => {
    await using database = await migratedBefore(version);
    const { sql, open } = database;
    const [other] = await sql<[{ id: string }]>`
      insert into chats (user_id, vendor_id) values ('c2', 'v') returning id`;
    await open.unsafe("begin");
    // a send in flight, as the writer makes one: the chat's row bumped, its message written
    await open`update chats set last_seq = 1 where id = ${database.chatId}`;
    await database.send(1, open);
    // the next send, to another chat (the first one's row stays locked until its commit)
    const send = () => sql`update chats set last_seq = 1 where id = ${other.id}`;
    // a lock timeout longer than the test waits: a build that takes a lock sends queue behind
    // holds them off for as long as it scans a large table
    const migrating = migrate(database.migrator, database.all, { lockTimeoutMs: 30_000 });
    await waitingForLock(sql, index, `migration ${version}`);
    await within(send(), 2_000, "a send while the index is built");
    await within(database.send(2), 2_000, "its message while the index is built");
    await open.unsafe("commit");
    assert.deepEqual(await within(migrating, 20_000, "the migrations"), database.pending);
    const invalid = await sql`select indexrelid::regclass::text from pg_index where not indisvalid`;
    assert.deepEqual([...invalid], []);
    const [built] = await sql`select 1 from pg_indexes where indexname = ${index}`;
    assert.ok(built, `${index} is there`);
  });
}

Deno.test("migrate() on a database a newer release migrated tells of the migrations it does not know, and goes on", async () => {
  await using database = await emptyDatabase();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  const newer = [
    { version: 1, name: "first", sql: "create table a (id int)" },
    { version: 2, name: "second", sql: "create table b (id int)" },
    { version: 3, name: "third", sql: "create table c (id int)" },
  ];
  try {
    await migrate(sql, newer);
    const told: unknown[] = [];
    const applied = await migrate(sql, newer.slice(0, 1), {
      onNewerApplied: (migrations) => told.push(migrations),
    });
    assert.deepEqual(applied, []);
    assert.deepEqual(told, [[{ version: 2, name: "second" }, { version: 3, name: "third" }]]);
    await migrate(sql, newer, { onNewerApplied: (migrations) => told.push(migrations) });
    assert.equal(told.length, 1, "told with nothing newer");
  } finally {
    await sql.end();
  }
});

Deno.test("a migration that fails is rolled back alone, reported, and leaves the lock free for the next start", async () => {
  await using database = await emptyDatabase();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  const migrations = [
    { version: 1, name: "good", sql: "create table a (id int)" },
    { version: 2, name: "bad", sql: "create table b (id int); select no_such_function()" },
    { version: 3, name: "after", sql: "create table c (id int)" },
  ];
  try {
    await assert.rejects(
      migrate(sql, migrations),
      (error: Error) => error.message.includes("no_such_function"),
    );
    const tables = await sql<{ name: string }[]>`
      select table_name as name from information_schema.tables
      where table_schema = 'public' and table_name in ('a', 'b', 'c') order by 1`;
    assert.deepEqual(tables.map((table) => table.name), ["a"]);
    // the next start takes the lock at once, on the same pool of one, and goes on from there
    const fixed = [migrations[0]!, { ...migrations[1]!, sql: "create table b (id int)" }];
    assert.deepEqual(
      await within(migrate(sql, [...fixed, migrations[2]!]), 5_000, "the next migrate()"),
      [2, 3],
    );
  } finally {
    await sql.end();
  }
});

Deno.test("a migration that fails names itself, with the database's error as its cause", async () => {
  await using database = await emptyDatabase();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  const migrations = [
    { version: 1, name: "good", sql: "create table a (id int)" },
    { version: 2, name: "bad", sql: "alter table a add column b int references nowhere (id)" },
  ];
  try {
    await assert.rejects(migrate(sql, migrations), (error: Error) => {
      assert.equal(
        error.message,
        'migration 2 (bad) failed: relation "nowhere" does not exist',
      );
      assert.equal(errorCode(error.cause), "42P01");
      return true;
    });
  } finally {
    await sql.end();
  }
});

Deno.test("a migration waiting for a long transaction's lock gives way to sends, and is applied once the transaction ends", async () => {
  await using database = await migratedBefore(8);
  const { sql, open } = database;
  // a long read holds a share lock on messages: 0008's alter table must wait for its end
  await open.unsafe("begin");
  await open`select count(*) from messages`;
  const waits: number[] = [];
  const migrating = migrate(database.migrator, database.all, {
    lockTimeoutMs: 300,
    onLockWait: (migration) => waits.push(migration.version),
  });
  await waitingForLock(sql, "alter table messages add column read_by", "migration 0008");
  // sends queue behind the waiting alter table for one lock timeout at most, not until the
  // long transaction ends; the migration tries again meanwhile
  for (let seq = 1; seq <= 3; seq++) await within(database.send(seq), 2_000, `send ${seq}`);
  await waitingForLock(sql, "alter table messages add column read_by", "migration 0008 again");
  await open.unsafe("commit");
  assert.deepEqual(await within(migrating, 20_000, "the migration"), database.pending);
  assert.deepEqual([...new Set(waits)], [8]);
  const [column] = await sql`
    select 1 from information_schema.columns
    where table_name = 'messages' and column_name = 'read_by'`;
  assert.ok(column, "messages.read_by was added");
});

Deno.test("a migration whose locks stay held gives up with unavailable, naming itself, and leaves nothing half-applied", async () => {
  await using database = await migratedBefore(8);
  const { sql, open, migrator, all, pending } = database;
  await open.unsafe("begin");
  await open`select count(*) from messages`;
  await assert.rejects(
    within(migrate(migrator, all, { lockTimeoutMs: 100, lockWaitMs: 1_000 }), 5_000, "migrate()"),
    (error: unknown) =>
      error instanceof ChatError && error.code === "unavailable" &&
      error.message.includes("migration 8 (read_by)"),
  );
  await open.unsafe("commit");
  const rows = await sql<{ version: number }[]>`
    select version from schema_migrations where version >= 8`;
  assert.deepEqual(rows.map((row) => row.version), []);
  // the lock is free: the next start applies them
  assert.deepEqual(await within(migrate(migrator, all), 10_000, "the next migrate()"), pending);
});

Deno.test("migrate() whose connection is cut while it waits for another instance's lock fails, not the process", async () => {
  // It tried the lock again every 200 ms on its reserved connection: one lost in a pause was
  // written to as a closed socket, which postgres.js 3.4.9 throws outside any promise
  await using database = await emptyDatabase();
  await using proxy = startTcpProxy(database.url);
  const holder = postgres(database.url, { max: 1, onnotice: () => {} });
  const closed = Promise.withResolvers<void>();
  const sql = postgres(proxy.url, { max: 1, onnotice: () => {}, onclose: () => closed.resolve() });
  try {
    await holder`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    const migrating = migrate(sql, [{ version: 1, name: "notes", sql: "create table notes ()" }]);
    await within(
      (async () => {
        for (;;) {
          const [trying] = await holder`
            select 1 from pg_stat_activity
            where datname = current_database() and query like '%pg_try_advisory_lock%'
              and pid <> pg_backend_pid()`;
          if (trying) return;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      5_000,
      "migrate() to try the lock",
    );
    await proxy.cut();
    await within(closed.promise, 5_000, "the pool to see its connection closed");
    await assert.rejects(migrating, (error) => {
      assert.equal(errorCode(error), "CONNECTION_CLOSED");
      return true;
    });
  } finally {
    await holder.end();
    await sql.end({ timeout: 1 });
  }
});

Deno.test("migrations run to their end under a database's short statement_timeout and lock_timeout, and the pool's session keeps the database's settings", async () => {
  // Many deployments give the service's role or database a statement_timeout (and some a
  // lock_timeout) for its queries: a migration, which may take as long as it takes, and an index
  // built concurrently, which waits for older transactions, must not be cut by them
  await using database = await emptyDatabase();
  const setup = postgres(database.url, { max: 1, onnotice: () => {} });
  const other = postgres(database.url, { max: 1, onnotice: () => {} });
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  const name = new URL(database.url).pathname.slice(1);
  await setup.unsafe(`alter database ${name} set statement_timeout = '100ms'`);
  await setup.unsafe(`alter database ${name} set lock_timeout = '100ms'`);
  await setup`create table notes (id int)`;
  // a transaction older than the build: create index concurrently waits for its end
  const open = await other.reserve();
  try {
    await open.unsafe("begin");
    await open`select txid_current()`;
    const migrating = migrate(sql, [
      { version: 1, name: "slow", sql: "select pg_sleep(0.3); create table slow (id int)" },
      {
        version: 2,
        name: "slow_without_transaction",
        sql:
          "-- migrate: without transaction\nselect pg_sleep(0.3);\ncreate table slower (id int);",
      },
      {
        version: 3,
        name: "notes_by_id",
        sql:
          "-- migrate: without transaction\ncreate index concurrently notes_by_id on notes (id);",
      },
    ]);
    const failed = migrating.then(() => "applied", (error: Error) => error.message);
    const waiting = async () => {
      const [row] = await setup`
        select 1 from pg_stat_activity
        where datname = current_database()
          and query like '%create index concurrently notes_by_id%' and wait_event_type = 'Lock'
          and pid <> pg_backend_pid()`;
      return row !== undefined;
    };
    while (!await waiting()) {
      const outcome = await Promise.race([failed, new Promise((r) => setTimeout(r, 20))]);
      assert.equal(outcome, undefined, "migrate() ended before migration 3 waited");
    }
    // still waiting at five times the database's lock_timeout, then let through
    const until = Date.now() + 500;
    while (Date.now() < until) {
      if (!await waiting()) assert.fail(`migration 3 gave up its wait: ${await failed}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await open.unsafe("commit");
    assert.deepEqual(await within(migrating, 10_000, "migrate()"), [1, 2, 3]);
    const [settings] = await sql<[{ statement_timeout: string; lock_timeout: string }]>`
      select current_setting('statement_timeout') as statement_timeout,
             current_setting('lock_timeout') as lock_timeout`;
    assert.deepEqual(settings, { statement_timeout: "100ms", lock_timeout: "100ms" });
  } finally {
    await open.unsafe("rollback");
    open.release();
    await sql.end();
    await other.end();
    await setup.end();
  }
});

Deno.test("migrate() whose connection is cut while a migration pauses for a long transaction fails, not the process", async () => {
  // Between two tries of a migration whose locks were held, its connection was written to as a
  // closed socket, which postgres.js 3.4.9 throws outside any promise
  await using database = await migratedBefore(8);
  const { sql, open, all } = database;
  await using proxy = startTcpProxy(database.url);
  const closed = Promise.withResolvers<void>();
  const migrator = postgres(proxy.url, {
    max: 1,
    onnotice: () => {},
    onclose: () => closed.resolve(),
  });
  try {
    await open.unsafe("begin");
    await open`select count(*) from messages`;
    let cut: Promise<void> | undefined;
    const migrating = migrate(migrator, all, {
      lockTimeoutMs: 100,
      // the pause that follows is 100 ms, then twice that, ...: long enough to see the close
      onLockWait: () => void (cut ??= proxy.cut()),
    });
    await within(closed.promise, 5_000, "the migration's connection to close");
    await assert.rejects(within(migrating, 5_000, "migrate()"), (error) => {
      assert.equal(errorCode(error), "CONNECTION_CLOSED");
      return true;
    });
    await cut;
    await open.unsafe("commit");
    const rows = await sql<{ version: number }[]>`
      select version from schema_migrations where version >= 8`;
    assert.deepEqual(rows.map((row) => row.version), [], "nothing of the cut migration stays");
  } finally {
    await migrator.end({ timeout: 1 });
  }
});

Deno.test("migrate() waiting for the migration lock another session holds says so, naming the holder, and goes on once it is free", async () => {
  await using database = await emptyDatabase();
  const holder = postgres(database.url, {
    max: 1,
    onnotice: () => {},
    connection: { application_name: "chat-0a1b2c3d" },
  });
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await holder`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    const told = Promise.withResolvers<{ waitedMs: number; heldBy: string | null }>();
    const migrating = migrate(sql, [{ version: 1, name: "notes", sql: "create table notes ()" }], {
      lockHeldNoticeMs: 300,
      onMigrationLockHeld: (wait) => told.resolve(wait),
    });
    // a start that waits in silence looks hung: the operator is told who holds it
    const wait = await within(told.promise, 5_000, "the notice of the held lock");
    assert.ok(wait.waitedMs >= 300, String(wait.waitedMs));
    assert.equal(wait.heldBy, "chat-0a1b2c3d");
    await holder`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    assert.deepEqual(await within(migrating, 5_000, "the migration"), [1]);
  } finally {
    await holder.end();
    await sql.end({ timeout: 1 });
  }
});
