import postgres from "postgres";
import { signDevToken } from "../auth/sign.ts";
import { migrate } from "../db/migrate.ts";

/** Chats made straight in the database, so setup does not count against the service. */
export interface BenchChat {
  id: string;
  customer: string;
  vendor: string;
}

/** The options of every bench script for the PostgreSQL and NATS it runs against. */
export const localServiceOptions = {
  "admin-database-url": {
    type: "string",
    default: Deno.env.get("BENCH_ADMIN_DATABASE_URL") ??
      "postgres://postgres@127.0.0.1:5432/postgres",
  },
  "nats-url": { type: "string", default: Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222" },
} as const;

export async function createBenchDatabase(adminUrl: string): Promise<string> {
  const name = `chat_bench_${Date.now()}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
  try {
    await migrate(sql);
  } finally {
    await sql.end();
  }
  return url.toString();
}

export async function dropBenchDatabase(adminUrl: string, databaseUrl: string): Promise<void> {
  const name = new URL(databaseUrl).pathname.slice(1);
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end();
  }
}

export async function createChats(
  databaseUrl: string,
  count: number,
  tag: string,
): Promise<BenchChat[]> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const customers = Array.from({ length: count }, (_, i) => `${tag}-c${i}`);
    const vendors = Array.from({ length: count }, (_, i) => `${tag}-v${i}`);
    const rows = await sql<Array<{ id: string; user_id: string; vendor_id: string }>>`
      insert into chats (user_id, vendor_id)
      select * from unnest(${customers}::text[], ${vendors}::text[])
      returning id, user_id, vendor_id`;
    return rows.map((row) => ({ id: row.id, customer: row.user_id, vendor: row.vendor_id }));
  } finally {
    await sql.end();
  }
}

/** Fills a chat with `count` messages of history (as if sent over time). */
export async function seedHistory(databaseUrl: string, chat: BenchChat, count: number) {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql`
      insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type, content,
                            is_read, created_at, updated_at)
      select ${chat.id}, n, case when n % 2 = 0 then ${chat.customer} else ${chat.vendor} end,
             case when n % 2 = 0 then 'customer' else 'vendor' end,
             case when n % 2 = 0 then ${chat.vendor} else ${chat.customer} end,
             'text', 'history message number ' || n, n < ${count - 10},
             now() - make_interval(secs => ${count} - n), now() - make_interval(secs => ${count} - n)
      from generate_series(1, ${count}) as n`;
    await sql`update chats set last_seq = ${count},
                customer_unread = 5, vendor_unread = 5 where id = ${chat.id}`;
    // what autovacuum would have done by the time a chat has this much history
    await sql`vacuum analyze messages`;
  } finally {
    await sql.end();
  }
}

export function tokenFor(secret: string, userId: string): Promise<string> {
  return signDevToken(secret, userId, { ttlSeconds: 3600 });
}
