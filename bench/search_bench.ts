/**
 * `deno task bench:search`: SearchMessages on a million messages, measured end to end through
 * the real gRPC client against a running service.
 *
 * 1. Creates a fresh database (`chat_bench_<random>`) on --admin-database-url's server and migrates
 *    it; loads 10,000 chats (`insert ... select generate_series`) of 100 messages each
 *    (1,000,000 rows, `insert ... select` from unnest of arrays, 20,000 rows a statement), words
 *    drawn from a 20,000-word vocabulary with a skewed (Zipf-like) distribution, as chat text
 *    is; builds the GIN index after the load, then VACUUM ANALYZE.
 * 2. Starts the service on it (gRPC on, in-process bus) and runs a fixed, seeded mix of queries
 *    one at a time, after a warm-up, and prints p50/p90/p99 per kind of query and overall.
 * 3. Drops the database (unless --keep) and writes the figures to bench/results/.
 *
 * Options: USAGE below.
 */
import postgres from "postgres";
import { loadConfig } from "../config.ts";
import { migrate } from "../db/migrate.ts";
import { startService } from "../main.ts";
import { createAdminClient } from "../tests/support/admin_client.ts";
import { commandLine } from "./command_line.ts";
import { localServiceOptions } from "./setup.ts";

const MESSAGES_PER_CHAT = 100;
const VOCABULARY_SIZE = 20_000;

const USAGE = `usage: deno task bench:search [--messages 1000000] [--queries 600]
         [--keep | --database NAME] [--admin-database-url postgres://...]
  --messages  how many to load (a multiple of ${MESSAGES_PER_CHAT})
  --keep      keep the database; --database NAME reruns the queries on it, with no load`;

const values = commandLine(USAGE, {
  messages: { type: "string", default: "1000000" },
  queries: { type: "string", default: "600" },
  keep: { type: "boolean", default: false },
  database: { type: "string" },
  "admin-database-url": localServiceOptions["admin-database-url"],
}, { positive: ["messages", "queries"] });
const serverUrl = values["admin-database-url"];
const totalMessages = Number(values.messages);
const queryCount = Number(values.queries);
const keep = values.keep;
const reuse = values.database;

/** A small seeded PRNG (mulberry32): the same queries on every run. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * Common chat words first (they get the highest frequencies), then made-up words of two to
 * four syllables standing for product names, places and the long tail of a real vocabulary.
 */
function vocabulary(): string[] {
  const common = (
    "the a is to you i it and for of in this do have be can me my we on at with not what " +
    "are yes no hi hello thanks please how when still available price size color order " +
    "shipping delivery send paid payment refund return item box new used today tomorrow " +
    "week good ok sure question photo more discount address tracking number cash card " +
    "small large black white red blue green brown leather cotton wood metal phone shoes " +
    "bag dress shirt jacket watch lamp table chair bike camera laptop book toy ring"
  ).split(" ");
  const syllables = ("ka lo mi ra ne to su vi pa de ri no ba ce fu go hu ja ke li ma ni or pe " +
    "qu sa te ul ve wa xi yo za an el is ok un").split(" ");
  const next = random(7);
  const words = new Set(common);
  while (words.size < VOCABULARY_SIZE) {
    const length = 2 + Math.floor(next() * 3);
    let word = "";
    for (let index = 0; index < length; index++) {
      word += syllables[Math.floor(next() * syllables.length)];
    }
    words.add(word);
  }
  return [...words];
}

async function load(sql: postgres.Sql, words: string[]) {
  const chats = totalMessages / MESSAGES_PER_CHAT;
  await sql`set synchronous_commit = off`;
  await sql`set maintenance_work_mem = '1GB'`;
  // built after the load: one sorted build is far faster than a million inserts into GIN
  await sql`drop index messages_search`;
  await sql`
    insert into chats (user_id, vendor_id, last_seq, created_at, updated_at)
    select 'user-' || g, 'vendor-' || (g % 500), ${MESSAGES_PER_CHAT},
           now() - interval '400 days' + g * interval '1 minute', now()
    from generate_series(1, ${chats}) g`;
  const chatRows = await sql<Array<{ id: string; user_id: string; vendor_id: string }>>`
    select id, user_id, vendor_id from chats order by created_at`;
  const next = random(1);
  // Each message: 3 to 16 words; word i is picked with a weight falling like a power law, so
  // a few words are in most messages and most words in few (random() ^ 3 skews to low i).
  const sentence = () => {
    const length = 3 + Math.floor(next() * 14);
    const picked: string[] = [];
    for (let index = 0; index < length; index++) {
      picked.push(words[Math.floor(next() ** 3 * words.length)]!);
    }
    return picked.join(" ");
  };
  const started = performance.now();
  const chatsPerBatch = 200;
  for (let first = 0; first < chatRows.length; first += chatsPerBatch) {
    const ids: string[] = [];
    const seqs: number[] = [];
    const contents: string[] = [];
    for (const chat of chatRows.slice(first, first + chatsPerBatch)) {
      for (let seq = 1; seq <= MESSAGES_PER_CHAT; seq++) {
        ids.push(chat.id);
        seqs.push(seq);
        contents.push(sentence());
      }
    }
    // the rows' shape comes from SQL; only ids, seqs and words travel as three arrays
    await sql`
      insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type,
                            content, is_read, created_at, updated_at)
      select m.chat_id, m.seq,
             case when m.seq % 2 = 1 then c.user_id else c.vendor_id end,
             case when m.seq % 2 = 1 then 'customer' else 'vendor' end,
             case when m.seq % 2 = 1 then c.vendor_id else c.user_id end,
             'text', m.content, m.seq < ${MESSAGES_PER_CHAT - 2},
             c.created_at + m.seq * interval '1 hour', c.created_at + m.seq * interval '1 hour'
      from unnest(${ids}::uuid[], ${seqs}::int[], ${contents}::text[]) as m(chat_id, seq, content)
      join chats c on c.id = m.chat_id`;
    const done = Math.min(first + chatsPerBatch, chatRows.length) * MESSAGES_PER_CHAT;
    if (done % 100_000 === 0 || done === totalMessages) {
      const seconds = (performance.now() - started) / 1000;
      console.log(`  ${done.toLocaleString("en")} messages (${seconds.toFixed(0)} s)`);
    }
  }
  console.log("  building the GIN index");
  await sql`create index messages_search on messages using gin (search_vector)`;
  console.log("  vacuum analyze");
  await sql`vacuum analyze messages`;
  await sql`vacuum analyze chats`;
}

interface Query {
  kind: string;
  request: Record<string, unknown>;
}

async function queries(sql: postgres.Sql, words: string[]): Promise<Query[]> {
  const next = random(42);
  const pick = (from: number, to: number) => words[from + Math.floor(next() * (to - from))]!;
  const chatIds = (await sql<Array<{ id: string }>>`
    select id from chats order by created_at limit 2000`).map((row) => row.id);
  const samples = (await sql<Array<{ content: string }>>`
    select content from messages where seq = 7 limit 500`).map((row) => row.content);
  const mix: Query[] = [];
  for (let index = 0; index < queryCount; index++) {
    const roll = next();
    if (roll < 0.35) {
      mix.push({ kind: "one mid-frequency word", request: { query: pick(100, 5_000) } });
    } else if (roll < 0.5) {
      mix.push({ kind: "one rare word", request: { query: pick(5_000, words.length) } });
    } else if (roll < 0.7) {
      mix.push({
        kind: "two words (and)",
        request: { query: `${pick(20, 2_000)} ${pick(20, 2_000)}` },
      });
    } else if (roll < 0.8) {
      const sample = samples[Math.floor(next() * samples.length)]!.split(" ");
      const at = Math.floor(next() * Math.max(1, sample.length - 1));
      mix.push({
        kind: "phrase from a message",
        request: { query: `"${sample.slice(at, at + 2).join(" ")}"` },
      });
    } else if (roll < 0.9) {
      mix.push({
        kind: "common word in one chat",
        request: { query: pick(0, 50), chat_id: chatIds[Math.floor(next() * chatIds.length)] },
      });
    } else {
      mix.push({
        kind: "mid word, one sender, 30 days",
        request: {
          query: pick(50, 2_000),
          sender_id: `vendor-${Math.floor(next() * 500)}`,
          created_after: { seconds: Math.floor(Date.now() / 1000) - 30 * 86_400, nanos: 0 },
        },
      });
    }
  }
  return mix;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

function summary(times: number[]) {
  const sorted = [...times].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.at(-1)!,
    mean: sorted.reduce((sum, time) => sum + time, 0) / sorted.length,
  };
}

const format = (row: ReturnType<typeof summary>) =>
  `n=${String(row.n).padStart(4)}  p50 ${row.p50.toFixed(1).padStart(6)} ms  p90 ${
    row.p90.toFixed(1).padStart(6)
  } ms  p99 ${row.p99.toFixed(1).padStart(6)} ms  max ${row.max.toFixed(1).padStart(6)} ms`;

const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
const name = reuse ?? `chat_bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
const url = new URL(serverUrl);
url.pathname = `/${name}`;
const words = vocabulary();
try {
  if (!reuse) {
    console.log(`database ${name}: loading ${totalMessages.toLocaleString("en")} messages`);
    await admin.unsafe(`create database ${name}`);
    const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
    try {
      await migrate(sql);
      const started = performance.now();
      await load(sql, words);
      console.log(`loaded in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    } finally {
      await sql.end();
    }
  }
  const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
  const [size] = await sql<Array<{ rows: string; table: string; index: string }>>`
    select (select count(*) from messages)::text as rows,
           pg_size_pretty(pg_table_size('messages')) as table,
           pg_size_pretty(pg_relation_size('messages_search')) as index`;
  const mix = await queries(sql, words);
  await sql.end();

  const token = `bench-${crypto.randomUUID()}`;
  const service = await startService(loadConfig({
    DATABASE_URL: url.toString(),
    DATABASE_POOL_SIZE: "4",
    PORT: "0",
    HOST: "127.0.0.1",
    GRPC_ENABLED: "1",
    GRPC_PORT: "0",
    GRPC_ADMIN_TOKEN: token,
    JWT_SECRET: crypto.randomUUID() + crypto.randomUUID(),
  }));
  try {
    using client = await createAdminClient(`127.0.0.1:${service.grpcPort}`, { token });
    const search = async (request: Record<string, unknown>) => {
      const started = performance.now();
      const reply = await client.call("SearchMessages", { page_size: 50, ...request });
      return { ms: performance.now() - started, found: reply.messages.length as number };
    };
    for (const query of mix.slice(0, 50)) await search(query.request); // warm-up
    const byKind = new Map<string, number[]>();
    const all: number[] = [];
    let found = 0;
    for (const query of mix) {
      const { ms, found: hits } = await search(query.request);
      all.push(ms);
      found += hits;
      byKind.set(query.kind, [...(byKind.get(query.kind) ?? []), ms]);
    }
    // The worst case on its own: the most frequent words, no filter, ranking every match.
    const worst: number[] = [];
    for (const word of words.slice(0, 10)) worst.push((await search({ query: word })).ms);

    // other work on the machine skews the figures: say how busy it was
    const loadAverage = Deno.loadavg().map((value) => value.toFixed(2)).join(" ");
    const results = {
      at: new Date().toISOString(),
      machine: { cores: navigator.hardwareConcurrency, load_average: loadAverage },
      messages: Number(size!.rows),
      table: size!.table,
      gin_index: size!.index,
      page_size: 50,
      overall: summary(all),
      by_kind: Object.fromEntries([...byKind].map(([kind, times]) => [kind, summary(times)])),
      most_common_words_unfiltered: summary(worst),
      average_results_per_query: found / mix.length,
    };
    console.log(
      `\nSearchMessages on ${Number(size!.rows).toLocaleString("en")} messages ` +
        `(table ${size!.table}, GIN ${
          size!.index
        }), ${results.machine.cores} cores, load ${loadAverage}`,
    );
    console.log(`  overall                          ${format(results.overall)}`);
    for (const [kind, row] of Object.entries(results.by_kind)) {
      console.log(`  ${kind.padEnd(32)} ${format(row)}`);
    }
    console.log(
      `  ${"10 most common words, no filter".padEnd(32)} ${
        format(results.most_common_words_unfiltered)
      }`,
    );
    await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
    const file = new URL(
      `./results/search-${results.at.replaceAll(":", "-")}.json`,
      import.meta.url,
    );
    await Deno.writeTextFile(file, JSON.stringify(results, null, 2) + "\n");
    console.log(`\nwritten to bench/results/${file.pathname.split("/").at(-1)}`);
  } finally {
    await service.close();
  }
} finally {
  if (!keep && !reuse) await admin.unsafe(`drop database if exists ${name} with (force)`);
  else console.log(`kept database ${name} (reuse: --database ${name})`);
  await admin.end();
}
