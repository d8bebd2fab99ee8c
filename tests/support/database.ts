import postgres from "postgres";
import type { NewMessage } from "../../chat/ports.ts";
import { migrate, readMigrations } from "../../db/migrate.ts";

/** The server tests run against; CI and the dev machine have one at this address. */
export const TEST_DATABASE_URL = Deno.env.get("TEST_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

let template: Promise<string> | undefined;

/** A migrated template database named after the migrations' content, made once. */
function templateDatabase(): Promise<string> {
  return template ??= (async () => {
    const migrations = await readMigrations();
    const digest = new Uint8Array(
      await crypto.subtle.digest(
        "SHA-256",
        new TextEncoder().encode(migrations.map((m) => m.sql).join("\n")),
      ),
    );
    const name = `chat_template_${
      [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("")
    }`;
    const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      // test files may run in parallel processes: one of them builds the template
      await admin`select pg_advisory_lock(727002)`;
      const [exists] = await admin`select 1 from pg_database where datname = ${name}`;
      if (!exists) {
        await admin.unsafe(`create database ${name}`);
        const sql = postgres(withDatabase(name), { max: 1, onnotice: () => {} });
        try {
          await migrate(sql, migrations);
        } finally {
          await sql.end();
        }
      }
      await admin`select pg_advisory_unlock(727002)`;
    } finally {
      await admin.end();
    }
    return name;
  })();
}

function withDatabase(name: string): string {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** A fresh, migrated database of its own; dropped on dispose. */
export async function freshDatabase(): Promise<{ url: string } & AsyncDisposable> {
  const source = await templateDatabase();
  const name = `chat_t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name} template ${source}`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(name),
    async [Symbol.asyncDispose]() {
      const cleanup = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        await cleanup.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await cleanup.end();
      }
    },
  };
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
