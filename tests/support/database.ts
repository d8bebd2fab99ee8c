import postgres from "postgres";
import type { NewMessage } from "../../chat/ports.ts";
import { migrate, type Migration, readMigrations } from "../../db/migrate.ts";

/** The server tests run against; CI and the dev machine have one at this address. */
export const TEST_DATABASE_URL = Deno.env.get("TEST_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

/**
 * What a copy of the template holds but for its name: the fingerprint of its schema, to tell a
 * copy whose schema a test changed, and the rows the migrations put in its tables (as JSON), to
 * put back when a copy is emptied.
 */
interface TemplateState {
  schema: string;
  rows: Record<string, unknown[]>;
}

let template: Promise<{ name: string } & TemplateState> | undefined;

/**
 * A migrated template database named after the migrations' content, made once, with its state
 * kept as the database's comment. The comment is written last: a template without one was not
 * finished, and is made again. (`v2`: templates of earlier test code kept no state.) An attempt
 * that failed (a connection reset, PostgreSQL restarting) is forgotten: the next lease tries
 * again, rather than every later test of the process failing with it.
 */
function templateDatabase(): Promise<{ name: string } & TemplateState> {
  return template ??= (async () => {
    const migrations = await readMigrations();
    const digest = new Uint8Array(
      await crypto.subtle.digest(
        "SHA-256",
        new TextEncoder().encode(migrations.map((m) => m.sql).join("\n")),
      ),
    );
    const name = `chat_template_v2_${
      [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("")
    }`;
    const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      // test files may run in parallel processes: one of them builds the template
      await admin`select pg_advisory_lock(727002)`;
      const state = await finishedTemplate(admin, name, migrations);
      await dropOtherCopies(admin, name.replace("chat_template_", "chat_pool_"));
      await admin`select pg_advisory_unlock(727002)`;
      return { name, ...state };
    } finally {
      await admin.end();
    }
  })().catch((error) => {
    template = undefined;
    throw error;
  });
}

/**
 * The state of the template database `name`, made of `migrations` unless it was finished (has
 * its comment). Called under the 727002 lock, which every process making a template takes.
 */
export async function finishedTemplate(
  admin: postgres.Sql,
  name: string,
  migrations: Migration[],
): Promise<TemplateState> {
  const [made] = await admin<[{ comment: string | null }?]>`
    select shobj_description(oid, 'pg_database') as comment
    from pg_database where datname = ${name}`;
  const finished = parsedState(made?.comment);
  if (finished) return finished;
  // a build cut short may have left a session on it (its process killed mid-statement); no
  // lease copies an unfinished template, and no one else builds it while we hold the lock
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.unsafe(`create database ${name}`);
  const sql = postgres(withDatabase(name), { max: 1, onnotice: () => {} });
  let state: TemplateState;
  try {
    await migrate(sql, migrations);
    state = await templateState(sql);
  } finally {
    await sql.end();
  }
  const comment = JSON.stringify(state).replaceAll("'", "''");
  await admin.unsafe(`comment on database ${name} is '${comment}'`);
  return state;
}

/**
 * Drops the pooled copies of other migrations (another checkout's, or older ones) that no lease
 * holds: each set of migrations ever tested would otherwise keep its copies, a few MB apiece, as
 * long as the cluster. A copy in use has its slot's lock held, taken here around the drop as a
 * lease takes it. (Their templates stay: a process of theirs may be about to copy one.)
 */
async function dropOtherCopies(admin: postgres.Sql, prefix: string): Promise<void> {
  const copies = await admin<{ name: string }[]>`
    select datname as name from pg_database
    where starts_with(datname, 'chat_pool_') and not starts_with(datname, ${`${prefix}_`})`;
  for (const { name } of copies) {
    // `<prefix>_<slot>`, or `<prefix>_<slot>_<lease>` (see leasedCopy)
    const slotText = /_(\d{1,9})(?:_[0-9a-f]{8})?$/.exec(name)?.[1];
    if (slotText === undefined) continue;
    const slot = Number(slotText);
    const [{ free }] = await admin<[{ free: boolean }]>`
      select pg_try_advisory_lock(727003, ${slot}) as free`;
    if (!free) continue;
    try {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
    } finally {
      await admin`select pg_advisory_unlock(727003, ${slot})`;
    }
  }
}

function parsedState(comment: string | null | undefined): TemplateState | undefined {
  try {
    const state = JSON.parse(comment ?? "");
    return typeof state?.schema === "string" && typeof state?.rows === "object" ? state : undefined;
  } catch {
    return undefined;
  }
}

async function templateState(sql: postgres.Sql): Promise<TemplateState> {
  const rows: Record<string, unknown[]> = {};
  for (const table of await tablesToEmpty(sql)) {
    const [{ content }] = await sql<[{ content: unknown[] | null }]>`
      select json_agg(t) as content from ${sql(table)} as t`;
    if (content) rows[table] = content;
  }
  return { schema: await schemaFingerprint(sql), rows };
}

/** The tables a copy is emptied of: all but the migrations' record. */
async function tablesToEmpty(sql: postgres.Sql): Promise<string[]> {
  const tables = await sql<{ name: string }[]>`
    select tablename as name from pg_tables
    where schemaname = 'public' and tablename <> 'schema_migrations' order by tablename`;
  return tables.map((table) => table.name);
}

/**
 * A digest of what the migrations make (tables, columns, indexes, constraints, triggers, functions,
 * storage options): a test that changed any of it leaves a database no later test may reuse.
 */
async function schemaFingerprint(sql: postgres.Sql): Promise<string> {
  const [{ digest }] = await sql<[{ digest: string }]>`
    select md5(string_agg(item, E'\n' order by item)) as digest from (
      select format('%s %s %s.%s %s %s %s %s', c.relkind, c.reloptions, c.relname, a.attname,
        format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attstorage,
        pg_get_expr(d.adbin, d.adrelid)) as item
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
      left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
      union all
      select pg_get_indexdef(i.indexrelid) from pg_index i
      join pg_class c on c.oid = i.indrelid
      join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
      union all
      select conrelid::regclass || ' ' || pg_get_constraintdef(o.oid) from pg_constraint o
      join pg_namespace n on n.oid = o.connamespace and n.nspname = 'public'
      union all
      select pg_get_triggerdef(t.oid) from pg_trigger t
      join pg_class c on c.oid = t.tgrelid
      join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
      where not t.tgisinternal
      union all
      select pg_get_functiondef(p.oid) from pg_proc p
      join pg_namespace n on n.oid = p.pronamespace and n.nspname = 'public'
    ) as schema`;
  return digest;
}

function withDatabase(name: string): string {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * A migrated database of its own, empty, until disposed. Databases are pooled across tests, test
 * files and runs: a DROP DATABASE forces a checkpoint and a copy of the template writes all of it
 * to the WAL, together about a quarter of a second of PostgreSQL's time per test, where emptying
 * a pooled copy takes a few milliseconds. A lease is a session advisory lock held by a connection
 * of its own; the next lease of the copy empties it (so a test that crashed leaves nothing
 * behind), and a copy whose schema a test changed is made anew.
 */
export async function freshDatabase(): Promise<{ url: string } & AsyncDisposable> {
  const source = await templateDatabase();
  const lease = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const name = await leasedCopy(lease, source);
    return {
      url: withDatabase(name),
      async [Symbol.asyncDispose]() {
        try {
          await sessionsGone(lease, name);
        } finally {
          await lease.end();
        }
      },
    };
  } catch (error) {
    await lease.end();
    throw error;
  }
}

/**
 * Leases a free pooled copy of `source` on `lease`'s session and empties it: its name. Each lease
 * names the copy anew (`<slot>_<lease>`), so a pool of an earlier lease left open (a service a
 * failed test did not close) cannot connect to the copy again and write to the next test's data.
 */
async function leasedCopy(
  lease: postgres.Sql,
  source: { name: string } & TemplateState,
): Promise<string> {
  const prefix = source.name.replace("chat_template_", "chat_pool_");
  for (let slot = 0;; slot++) {
    const [{ leased }] = await lease<[{ leased: boolean }]>`
      select pg_try_advisory_lock(727003, ${slot}) as leased`;
    if (!leased) continue;
    const name = `${prefix}_${slot}_${crypto.randomUUID().slice(0, 8)}`;
    // one copy a slot (earlier test code named it without a lease's part, and may name it so again)
    const [kept, ...extra] = await lease<{ name: string }[]>`
      select datname as name from pg_database
      where datname = ${`${prefix}_${slot}`} or starts_with(datname, ${`${prefix}_${slot}_`})`;
    for (const copy of extra) await lease.unsafe(`drop database ${copy.name} with (force)`);
    if (!kept) {
      await lease.unsafe(`create database ${name} template ${source.name}`);
      return name;
    }
    // no session of an earlier lease may come back while the copy is renamed
    await lease.unsafe(`alter database ${kept.name} with allow_connections false`);
    await endSessionsOf(lease, kept.name);
    await lease.unsafe(`alter database ${kept.name} rename to ${name}`);
    await lease.unsafe(`alter database ${name} with allow_connections true`);
    await lease.unsafe(`alter database ${name} reset all`);
    const sql = postgres(withDatabase(name), { max: 1, onnotice: () => {} });
    let schemaKept: boolean;
    try {
      schemaKept = await schemaFingerprint(sql) === source.schema;
      if (schemaKept) await empty(sql, source.rows);
    } finally {
      await sql.end();
    }
    if (!schemaKept) {
      await lease.unsafe(`drop database ${name} with (force)`);
      await lease.unsafe(`create database ${name} template ${source.name}`);
    }
    return name;
  }
}

/**
 * Waits until the sessions on the database have ended, as those of a closed service or pool
 * do, for a moment at most, and then ends them. A postgres.js pool's end() resolves before its
 * sockets have closed when a connection was busy; each still holds a max_lifetime timer,
 * cleared once its socket closes. A test that ended first would be failed by Deno's sanitizer
 * for that timer, or the next test in its file for seeing it cleared.
 */
async function sessionsGone(lease: postgres.Sql, name: string): Promise<void> {
  const giveUpAt = performance.now() + SESSIONS_END_WAIT_MS;
  for (;;) {
    const [{ left }] = await lease<[{ left: number }]>`
      select count(*)::int as left from pg_stat_activity where datname = ${name}`;
    if (left === 0) break;
    if (performance.now() > giveUpAt) return await endSessionsOf(lease, name);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  // a backend leaves pg_stat_activity just before its socket closes
  await new Promise((resolve) => setTimeout(resolve, 10));
}

/** How long a lease given back waits for its database's sessions to end by themselves. */
const SESSIONS_END_WAIT_MS = 1_000;

/** Ends the sessions a test left on the database, and waits until they are gone. */
async function endSessionsOf(lease: postgres.Sql, name: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    const [{ left }] = await lease<[{ left: number }]>`
      select count(pg_terminate_backend(pid))::int as left
      from pg_stat_activity where datname = ${name}`;
    if (left === 0) return;
    if (attempt === 250) throw new Error(`sessions on ${name} would not end`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Empties every table but the migrations' record, and puts back the rows the template has. */
async function empty(sql: postgres.Sql, rows: TemplateState["rows"]): Promise<void> {
  const tables = await tablesToEmpty(sql);
  await sql`truncate ${sql(tables)} restart identity cascade`;
  for (const [table, content] of Object.entries(rows)) {
    await sql`
      insert into ${sql(table)}
      select * from jsonb_populate_recordset(null::${sql(table)}, ${
      sql.json(content as postgres.JSONValue)
    })`;
  }
  // the planner's statistics and the counters a test reads start afresh too
  await sql`delete from pg_statistic where starelid in (
    select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public')`;
  await sql`select pg_stat_reset()`;
}

/** A text message from alice, the customer, to acme in `chatId`, as a store takes it. */
export const fromAlice = (
  chatId: string,
  content: string,
  clientId: string | null = null,
): NewMessage => ({
  chat_id: chatId,
  sender_id: "alice",
  sender_side: "customer",
  receiver_id: "acme",
  media_type: "text",
  content,
  media_id: null,
  client_id: clientId,
});

/** How many sessions of the database wait for a lock, in a statement like `queryLike`. */
async function waitersForLock(sql: postgres.Sql, queryLike: string): Promise<number> {
  const [{ waiting }] = await sql<[{ waiting: number }]>`
    select count(*)::int as waiting from pg_stat_activity
    where datname = current_database() and wait_event_type = 'Lock' and query like ${queryLike}`;
  return waiting;
}

/** Whether a session of the database waits for a lock, in a statement like `queryLike`. */
async function someoneWaitsForLock(sql: postgres.Sql, queryLike: string): Promise<boolean> {
  return await waitersForLock(sql, queryLike) > 0;
}

const pause = () => new Promise((resolve) => setTimeout(resolve, 20));

/**
 * Resolves once a session of the database (`sessions` of them, default 1) waits for a lock, in
 * a statement like `queryLike`.
 */
export async function waitingForLock(
  sql: postgres.Sql,
  queryLike = "%",
  options: { sessions?: number } = {},
): Promise<void> {
  const sessions = options.sessions ?? 1;
  while (await waitersForLock(sql, queryLike) < sessions) await pause();
}

/** Resolves once no session of the database waits for a lock; rejects after `ms`. */
export async function noneWaitingForLock(sql: postgres.Sql, ms: number): Promise<void> {
  const giveUpAt = performance.now() + ms;
  while (await someoneWaitsForLock(sql, "%")) {
    if (performance.now() > giveUpAt) {
      throw new Error(`a statement still waits for a lock after ${ms} ms`);
    }
    await pause();
  }
}
