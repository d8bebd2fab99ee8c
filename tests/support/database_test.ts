import assert from "node:assert/strict";
import postgres from "postgres";
import { finishedTemplate, freshDatabase, TEST_DATABASE_URL } from "./database.ts";

const nameOf = (url: string) => new URL(url).pathname.slice(1);

/** The pooled copy (its slot) a lease's database is, whatever the lease named it. */
const copyOf = (url: string) => nameOf(url).replace(/_[0-9a-f]{8}$/, "");

type Lease = Awaited<ReturnType<typeof freshDatabase>>;

/**
 * Leases until the copies `wanted` (see copyOf) are among the leases held: the lowest free copy is
 * leased first, and a test file running beside this one may hold a wanted copy a while (what
 * was leased meanwhile is then given back, and the lowest free ones leased again).
 */
async function leasesHolding(wanted: string[]): Promise<Lease[]> {
  const giveUpAt = performance.now() + 60_000;
  const held: Lease[] = [];
  const holds = (copy: string) => held.some((lease) => copyOf(lease.url) === copy);
  while (!wanted.every(holds)) {
    if (held.length === 8) {
      if (performance.now() > giveUpAt) {
        await Promise.all(held.map((lease) => lease[Symbol.asyncDispose]()));
        throw new Error(`${wanted.join(", ")} not leased again in a minute`);
      }
      const unwanted = held.filter((lease) => !wanted.includes(copyOf(lease.url)));
      await Promise.all(unwanted.map((lease) => lease[Symbol.asyncDispose]()));
      held.splice(0, held.length, ...held.filter((lease) => !unwanted.includes(lease)));
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    held.push(await freshDatabase());
  }
  return held;
}

Deno.test("pooled databases a test left written to, with a session open, settings or schema changed, are leased again as copies of the template", async () => {
  const written = await freshDatabase();
  const reshaped = await freshDatabase();
  // a session left open past its lease: the lease ends it once given back
  const leftOpen = postgres(written.url, { max: 1, onnotice: () => {} });
  const [{ pid }] = await leftOpen<[{ pid: number }]>`select pg_backend_pid() as pid`;
  await leftOpen`insert into chats (user_id, vendor_id) values ('alice', 'acme')`;
  await leftOpen`update media_sweep set lease_holder = 'a test'`;
  await leftOpen.unsafe(
    `alter database ${nameOf(written.url)} set default_transaction_read_only = on`,
  );
  const schemaChanger = postgres(reshaped.url, { max: 1, onnotice: () => {} });
  await schemaChanger`alter table chats add column left_behind text`;
  await schemaChanger.end();
  await written[Symbol.asyncDispose]();
  await reshaped[Symbol.asyncDispose]();

  // leased again (the copies the other test files lease meanwhile are among them)
  const leases = await leasesHolding([copyOf(written.url), copyOf(reshaped.url)]);
  try {
    // looked for from outside: the copy leased again no longer answers to the name it had
    const observer = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      assert.equal(await sessionOpen(observer, pid), false, "the session left open was not ended");
    } finally {
      await observer.end();
    }
    for (const lease of leases) {
      const sql = postgres(lease.url, { max: 1, onnotice: () => {} });
      try {
        const [state] = await sql<[{ chats: number; holders: number; sweeps: number }]>`
          select (select count(*)::int from chats) as chats,
            (select count(lease_holder)::int from media_sweep) as holders,
            (select count(*)::int from media_sweep) as sweeps`;
        assert.deepEqual(state, { chats: 0, holders: 0, sweeps: 1 }, lease.url);
        const [column] = await sql`
          select 1 from information_schema.columns where column_name = 'left_behind'`;
        assert.equal(column, undefined, lease.url);
        const [{ readOnly }] = await sql<[{ readOnly: string }]>`
          select current_setting('default_transaction_read_only') as "readOnly"`;
        assert.equal(readOnly, "off", lease.url);
      } finally {
        await sql.end();
      }
    }
  } finally {
    await Promise.all(leases.map((lease) => lease[Symbol.asyncDispose]()));
    await leftOpen.end();
  }
});

Deno.test("a pool left open on a lease given back reaches nothing once its copy is leased again", async () => {
  const database = await freshDatabase();
  // a service a failed test did not close: its pool connects again after its session was ended
  const leftOpen = postgres(database.url, { max: 1, onnotice: () => {} });
  await leftOpen`select 1`;
  await database[Symbol.asyncDispose]();
  const leases = await leasesHolding([copyOf(database.url)]);
  try {
    const written = await leftOpen`insert into chats (user_id, vendor_id) values ('alice', 'acme')`
      .then(() => true, () => false);
    assert.equal(written, false, "the pool of the lease given back wrote to the copy leased again");
  } finally {
    await Promise.all(leases.map((lease) => lease[Symbol.asyncDispose]()));
    await leftOpen.end();
  }
});

Deno.test("a lease given back waits for the sessions a closing pool still has on it to end, without ending them", async () => {
  const database = await freshDatabase();
  const closing = postgres(database.url, { max: 1, onnotice: () => {} });
  const [{ pid }] = await closing<[{ pid: number }]>`select pg_backend_pid() as pid`;
  // a pool ended while its connection is busy: its end() resolves as the query ends, before the
  // socket has closed
  const busy = closing`select pg_sleep(0.3) as slept`.execute();
  const ended = closing.end();
  await database[Symbol.asyncDispose]();
  const sessions = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    // by its pid: a test file running beside this one may lease the copy at once
    assert.equal(
      await sessionOpen(sessions, pid),
      false,
      "the pool's session still on the database given back",
    );
  } finally {
    await sessions.end();
  }
  assert.deepEqual([...await busy], [{ slept: "" }], "the busy query was ended, not answered");
  await ended;
});

Deno.test("the pooled copies of other migrations that no lease holds are dropped as a test process takes its template", async () => {
  // copies another checkout's migrations left: one free, one a lease holds (its slot's lock)
  const free = "chat_pool_v2_000000000000_900001";
  const held = "chat_pool_v2_000000000000_900002";
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    for (const name of [free, held]) {
      await admin.unsafe(`drop database if exists ${name}`);
      await admin.unsafe(`create database ${name}`);
    }
    await admin`select pg_advisory_lock(727003, 900002)`;
    // a test process of its own: the template is taken once a process
    const script = `import { freshDatabase } from "${new URL("./database.ts", import.meta.url)}";
      await using _ = await freshDatabase();`;
    await runsInProcessOfItsOwn(script);
    const left = await admin<{ name: string }[]>`
      select datname as name from pg_database where datname in ${admin([free, held])}`;
    assert.deepEqual(left.map((copy) => copy.name), [held], "the copies left");
  } finally {
    await admin`select pg_advisory_unlock_all()`;
    for (const name of [free, held]) await admin.unsafe(`drop database if exists ${name}`);
    await admin.end();
  }
});

Deno.test("a process whose first lease failed to take its template (PostgreSQL away a moment) takes it on its next lease", async () => {
  // a test process of its own, its database reached through a proxy it cuts while the first lease
  // takes the template, and restores for the next (the URL is read as database.ts is loaded)
  const script = `import { startTcpProxy } from "${new URL("./tcp_proxy.ts", import.meta.url)}";
    await using postgresServer = startTcpProxy(${JSON.stringify(TEST_DATABASE_URL)});
    Deno.env.set("TEST_DATABASE_URL", postgresServer.url);
    const { freshDatabase } = await import("${new URL("./database.ts", import.meta.url)}");
    await postgresServer.cut();
    const refused = await freshDatabase().then(async (lease) => {
      await lease[Symbol.asyncDispose]();
      return false;
    }, () => true);
    if (!refused) throw new Error("leased while PostgreSQL was away");
    postgresServer.restore();
    await using _ = await freshDatabase().catch((error) => {
      throw new Error("the next lease failed as well", { cause: error });
    });`;
  await runsInProcessOfItsOwn(script);
});

/** Runs `script` as a test process of its own (`deno eval`), which must exit 0. */
async function runsInProcessOfItsOwn(script: string): Promise<void> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    cwd: new URL("../../", import.meta.url), // deno.json's imports
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

/**
 * A template database of a test's own (not the current migrations', which other test processes
 * copy meanwhile), with a session left on it, and the 727002 lock taken as templates are made.
 */
async function withOwnTemplate(
  comment: string | null,
  test: (own: { admin: postgres.Sql; name: string; sessionPid: number }) => Promise<void>,
): Promise<void> {
  const name = `chat_template_test_${crypto.randomUUID().slice(0, 8)}`;
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  const session = postgres(url.toString(), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
    if (comment !== null) {
      await admin.unsafe(`comment on database ${name} is '${comment.replaceAll("'", "''")}'`);
    }
    const [{ pid }] = await session<[{ pid: number }]>`select pg_backend_pid() as pid`;
    await admin`select pg_advisory_lock(727002)`;
    try {
      await test({ admin, name, sessionPid: pid });
    } finally {
      await admin`select pg_advisory_unlock(727002)`;
    }
  } finally {
    await session.end();
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

const ownMigrations = [{ version: 1, name: "kept", sql: "create table kept (id int primary key)" }];

async function sessionOpen(admin: postgres.Sql, pid: number): Promise<boolean> {
  const [{ open }] = await admin<[{ open: boolean }]>`
    select exists (select from pg_stat_activity where pid = ${pid}) as open`;
  return open;
}

Deno.test("a template a build left unfinished is made again, though a session is still on it", async () => {
  // a build cut short: the database made, no comment yet, a session of the build still on it
  await withOwnTemplate(null, async ({ admin, name, sessionPid }) => {
    const state = await finishedTemplate(admin, name, ownMigrations);
    assert.deepEqual(state.rows, {});
    const [{ comment }] = await admin<[{ comment: string }]>`
      select shobj_description(oid, 'pg_database') as comment
      from pg_database where datname = ${name}`;
    assert.deepEqual(JSON.parse(comment), state, "the template made again is finished");
    assert.equal(await sessionOpen(admin, sessionPid), false, "the build's session was not ended");
  });
});

Deno.test("a finished template is taken as it is, and the sessions on it are left alone", async () => {
  const state = { schema: "a schema", rows: { kept: [{ id: 1 }] } };
  await withOwnTemplate(JSON.stringify(state), async ({ admin, name, sessionPid }) => {
    assert.deepEqual(await finishedTemplate(admin, name, ownMigrations), state);
    assert.equal(await sessionOpen(admin, sessionPid), true, "a session on the template was ended");
  });
});
