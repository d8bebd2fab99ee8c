import assert from "node:assert/strict";
import postgres from "postgres";
import { freshDatabase, TEST_DATABASE_URL } from "./database.ts";

const LEASES_AT_ONCE = 8;

const nameOf = (url: string) => new URL(url).pathname.slice(1);

Deno.test("pooled databases a test left written to, with a session open, settings or schema changed, are leased again as copies of the template", async () => {
  const written = await freshDatabase();
  const reshaped = await freshDatabase();
  // a session left open past its lease: the next lease ends it
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

  // the lowest free copies are leased first: among these are the two just given back
  const leases = await Promise.all(
    Array.from({ length: LEASES_AT_ONCE }, () => freshDatabase()),
  );
  try {
    const names = leases.map((lease) => nameOf(lease.url));
    for (const given of [written, reshaped]) {
      assert.ok(names.includes(nameOf(given.url)), `${given.url} not among ${names.join(", ")}`);
    }
    const [{ sessions }] = await leftOpen<[{ sessions: number }]>`
      select count(*)::int as sessions from pg_stat_activity where pid = ${pid}`;
    assert.equal(sessions, 0, "the session left open was not ended");
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

Deno.test("a lease given back waits for the sessions a closing pool still has on it to end, without ending them", async () => {
  const database = await freshDatabase();
  const closing = postgres(database.url, { max: 1, onnotice: () => {} });
  await closing`select 1`;
  // a pool ended while its connection is busy: its end() resolves as the query ends, before the
  // socket has closed
  const busy = closing`select pg_sleep(0.3) as slept`.execute();
  const ended = closing.end();
  await database[Symbol.asyncDispose]();
  const sessions = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const [{ left }] = await sessions<[{ left: number }]>`
      select count(*)::int as left from pg_stat_activity where datname = ${nameOf(database.url)}`;
    assert.equal(left, 0, "a session still on the database given back");
  } finally {
    await sessions.end();
  }
  assert.deepEqual([...await busy], [{ slept: "" }], "the busy query was ended, not answered");
  await ended;
});
