/**
 * `deno task bench:sanctions`: the query that screens every open socket after a NATS reconnect
 * (ChatStore.sanctionsOf): while it runs, every socket of the instance holds its events.
 *
 * 1. Creates a fresh database (`chat_bench_<random>`) on --admin-database-url's server, migrates
 *    it, and loads a moderation log: one user in ten of --users disconnected once, one in a
 *    hundred banned, and 50,000 other moderation rows; then ANALYZE.
 * 2. Asks for the sanctions of all --users at once, --rounds times, and prints the first (cold)
 *    time and p50/max of the rest.
 * 3. Drops the database.
 */
import postgres from "postgres";
import { migrate } from "../db/migrate.ts";
import { createPostgresStore } from "../db/postgres_store.ts";
import { commandLine } from "./command_line.ts";
import { localServiceOptions } from "./setup.ts";

const USAGE = `usage: deno task bench:sanctions [--users 10000] [--rounds 20]
         [--admin-database-url postgres://...]
  --users   open sockets' users to screen at once (one socket each)`;

const values = commandLine(USAGE, {
  users: { type: "string", default: "10000" },
  rounds: { type: "string", default: "20" },
  "admin-database-url": localServiceOptions["admin-database-url"],
}, { positive: ["users", "rounds"] });
const users = Number(values.users);
const rounds = Number(values.rounds);

const admin = postgres(values["admin-database-url"], { max: 1, onnotice: () => {} });
const name = `chat_bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
const url = new URL(values["admin-database-url"]);
url.pathname = `/${name}`;
await admin.unsafe(`create database ${name}`);
try {
  const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
  try {
    await migrate(sql);
    await sql`
      insert into moderation_actions (action, moderator_id, target_user_id, reason)
      select 'disconnect_user', 'mod', 'user-' || g, 'support'
      from generate_series(1, ${users}, 10) g`;
    await sql`
      insert into moderation_actions (action, moderator_id, target_user_id, reason)
      select 'delete_message', 'mod', 'other-' || g, 'spam' from generate_series(1, 50000) g`;
    await sql`
      insert into bans (user_id, moderator_id, reason)
      select 'user-' || g, 'mod', 'spam' from generate_series(1, ${users}, 100) g`;
    await sql`analyze`;
    const store = createPostgresStore(sql);
    const userIds = Array.from({ length: users }, (_, index) => `user-${index + 1}`);
    const times: number[] = [];
    let sanctioned = 0;
    for (let round = 0; round < rounds; round++) {
      const started = performance.now();
      sanctioned = (await store.sanctionsOf(userIds)).size;
      times.push(performance.now() - started);
    }
    const [cold, ...warm] = times;
    warm.sort((a, b) => a - b);
    const p50 = warm[Math.floor(warm.length / 2)] ?? cold!;
    const max = warm.at(-1) ?? cold!;
    console.log(
      `sanctionsOf, ${users.toLocaleString("en")} users (${sanctioned} sanctioned), ` +
        `${navigator.hardwareConcurrency} cores: cold ${cold!.toFixed(1)} ms; ` +
        `then p50 ${p50.toFixed(1)} / max ${max.toFixed(1)} ms over ${warm.length} rounds`,
    );
  } finally {
    await sql.end();
  }
} finally {
  await admin.unsafe(`drop database ${name} with (force)`);
  await admin.end();
}
