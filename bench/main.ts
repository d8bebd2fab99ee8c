/**
 * `deno task bench`: the chat service under load over real WebSockets.
 *
 *   deno task bench --start      start the service (a subprocess), run everything
 *   deno task bench --help       every option (USAGE below)
 *
 * It starts nothing unless told to (--start). Figures are printed as a table and written as
 * JSON (bench/results/ by default); each rate is also given as a ratio to the raw PostgreSQL
 * single-row insert rate measured in the same run. The load scenarios also give their CPU time
 * per message (the service's, PostgreSQL's when it runs on this machine, the load generator's)
 * beside how busy the machine was.
 */
import { commandLine } from "./command_line.ts";
import { measureConnect, openIdleSockets } from "./connect.ts";
import { readCpu } from "./cpu.ts";
import { type LoadResult, runLoad } from "./load.ts";
import { rawInsertRate } from "./pgbench.ts";
import { type ServiceProcess, startServiceProcess } from "./service_process.ts";
import { shownMs, type Summary } from "./stats.ts";
import {
  createBenchDatabase,
  createChats,
  dropBenchDatabase,
  localServiceOptions,
  seedHistory,
} from "./setup.ts";

const USAGE = `usage: deno task bench --start [options]
       deno task bench --url ws://host:8000 --database-url postgres://... --secret ... [--pid N] [options]
options: --scenarios raw,load,read,connect,history,idle  --chats 200  --seconds 10  --warmup 1
         --rate 5000 | --concurrency 200  --idle 10000  --smoke  --out file.json
         --admin-database-url postgres://...  --nats-url nats://...`;

const OPTIONS = {
  start: { type: "boolean", default: false },
  url: { type: "string" },
  "database-url": { type: "string" },
  ...localServiceOptions,
  secret: { type: "string" },
  // with --url: the service's process id, for its CPU time (--start knows it)
  pid: { type: "string" },
  scenarios: { type: "string", default: "raw,load,read,connect,history,idle" },
  chats: { type: "string", default: "200" },
  seconds: { type: "string", default: "10" },
  warmup: { type: "string", default: "1" },
  rate: { type: "string" },
  concurrency: { type: "string" },
  idle: { type: "string", default: "10000" },
  smoke: { type: "boolean", default: false },
  out: { type: "string" },
} as const;

const values = commandLine(USAGE, OPTIONS, {
  positive: ["chats", "seconds", "rate", "concurrency", "idle", "pid"],
  nonNegative: ["warmup"],
});

const smoke = values.smoke;
const scenarios = new Set(values.scenarios.split(","));
const chatCount = smoke ? 4 : Number(values.chats);
const seconds = smoke ? 2 : Number(values.seconds);
const warmupSeconds = smoke ? 0.5 : Number(values.warmup);
const log = (line: string) => console.error(line);
const results: Record<string, unknown> = {
  machine: { cores: navigator.hardwareConcurrency, memoryGiB: await memoryGiB() },
  startedAt: new Date().toISOString(),
};

let service: ServiceProcess | undefined;
let databaseUrl = values["database-url"];
let secret = values.secret;
let wsBase = values.url;
let ownDatabase = false;

if (values.start) {
  databaseUrl = await createBenchDatabase(values["admin-database-url"]);
  ownDatabase = true;
  secret = crypto.randomUUID() + crypto.randomUUID();
  service = await startServiceProcess({
    // the load comes from a few sockets far faster than any person types
    WS_RATE_PER_SECOND: "100000",
    WS_RATE_BURST: "100000",
    WS_MAX_SOCKETS_PER_USER: "100000",
    // the environment may tune the service, but not move it off the database and secret the
    // bench made its chats and tokens with
    ...Deno.env.toObject(),
    DATABASE_URL: databaseUrl,
    NATS_URL: values["nats-url"],
    JWT_SECRET: secret,
  });
  wsBase = service.baseUrl.replace(/^http/, "ws");
  log(`service started: pid ${service.pid} at ${service.baseUrl}`);
} else if (!wsBase || !databaseUrl || !secret) {
  console.error("give --start, or --url, --database-url and --secret");
  Deno.exit(2);
}

try {
  let raw = 0;
  if (scenarios.has("raw")) {
    log("raw PostgreSQL single-row inserts (pgbench, 8 clients)...");
    raw = await rawInsertRate(databaseUrl!, smoke ? 2 : 10);
    results.rawInsertsPerSecond = raw;
    log(`  ${raw} inserts/s`);
  }
  const ratio = (rate: number) => raw ? Math.round((rate / raw) * 100) / 100 : null;
  // in flight in the closed loop: the announced figure is the one run
  const concurrency = Number(values.concurrency ?? (smoke ? 8 : 200));
  const load = async (name: string, markRead: boolean) => {
    const chats = await createChats(databaseUrl!, chatCount, `${name}${Date.now()}`);
    log(
      `${name}: ${chats.length} chats, ${warmupSeconds} s warm-up + ${seconds} s, ${
        values.rate ? `${values.rate}/s open loop` : `closed loop ${concurrency}`
      }${markRead ? ", receiver marks each read" : ""}`,
    );
    const result: LoadResult = await runLoad({
      wsBase: wsBase!,
      secret: secret!,
      chats,
      seconds,
      warmupSeconds,
      ...(values.rate ? { rate: Number(values.rate) } : { concurrency }),
      markRead,
      onProgress: log,
      readCpu: () => readCpu(service?.pid ?? (values.pid ? Number(values.pid) : null)),
    });
    results[name] = { ...result, storedRatioToRaw: ratio(result.storedPerSecond) };
  };
  if (scenarios.has("load")) await load("load", false);
  if (scenarios.has("read")) await load("read", true);

  if (scenarios.has("connect") || scenarios.has("history")) {
    const sizes = scenarios.has("history") ? (smoke ? [100, 1000] : [100, 10_000, 100_000]) : [100];
    const connect: Record<string, unknown> = {};
    for (const size of sizes) {
      const [chat] = await createChats(databaseUrl!, 1, `hist${size}-${Date.now()}`);
      await seedHistory(databaseUrl!, chat!, size);
      connect[`history${size}`] = await measureConnect(wsBase!, secret!, chat!, smoke ? 20 : 200);
      log(`connect with ${size} messages of history: ${JSON.stringify(connect[`history${size}`])}`);
    }
    results.connectMs = connect;
  }

  if (scenarios.has("idle")) {
    if (!service) {
      log("idle: needs --start (to read the service's memory); skipped");
    } else {
      const count = smoke ? 200 : Number(values.idle);
      const chats = await createChats(databaseUrl!, Math.ceil(count / 2), `idle${Date.now()}`);
      const before = await service.rss();
      const sockets = await openIdleSockets(wsBase!, secret!, chats, count, log);
      // give the service a moment of idleness before reading its memory
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const after = await service.rss();
      results.idle = {
        sockets: sockets.length,
        rssBeforeMiB: Math.round(before / 1048576),
        rssAfterMiB: Math.round(after / 1048576),
        perSocketKiB: Math.round(((after - before) / sockets.length / 1024) * 10) / 10,
      };
      log(`idle: ${JSON.stringify(results.idle)}`);
      await Promise.all(sockets.map((client) => client.close()));
    }
  }
} finally {
  await service?.[Symbol.asyncDispose]();
  if (ownDatabase) await dropBenchDatabase(values["admin-database-url"], databaseUrl!);
}

const out = values.out ?? `bench/results/bench-${Date.now()}.json`;
await Deno.mkdir(out.split("/").slice(0, -1).join("/") || ".", { recursive: true });
await Deno.writeTextFile(out, JSON.stringify(results, null, 2));
printTable(results);
console.log(`\nJSON: ${out}`);

function printTable(r: Record<string, unknown>) {
  const rows: Array<[string, string]> = [];
  const machine = r.machine as { cores: number; memoryGiB: number };
  rows.push(["machine", `${machine.cores} cores, ${machine.memoryGiB} GiB`]);
  if (r.rawInsertsPerSecond) {
    rows.push(["raw PostgreSQL inserts/s (pgbench, 8 clients)", String(r.rawInsertsPerSecond)]);
  }
  for (const name of ["load", "read"]) {
    const x = r[name] as (LoadResult & { storedRatioToRaw: number | null }) | undefined;
    if (!x) continue;
    rows.push([`${name}: mode`, x.mode]);
    rows.push([
      `${name}: stored/s, delivered/s`,
      `${x.storedPerSecond}, ${x.deliveredPerSecond} (×${x.storedRatioToRaw ?? "?"} of raw)`,
    ]);
    rows.push([
      `${name}: delivery ms p50/p90/p99/max`,
      [x.latencyMs.p50, x.latencyMs.p90, x.latencyMs.p99, x.latencyMs.max].map(shownMs).join(" / "),
    ]);
    rows.push([`${name}: ack ms p50/p99`, `${shownMs(x.ackMs.p50)} / ${shownMs(x.ackMs.p99)}`]);
    rows.push([
      `${name}: lost, duplicated, out of order, errors`,
      `${x.lost}, ${x.duplicates}, ${x.outOfOrder}, ${x.errors}`,
    ]);
    rows.push([`${name}: unread pushes received`, String(x.unreadPushes)]);
    if (x.cpu) {
      const { serviceMsPerThousand, postgresMsPerThousand, loadGeneratorMsPerThousand } = x.cpu;
      const service = serviceMsPerThousand ?? "? (give --pid)";
      rows.push([
        `${name}: CPU ms per 1,000 messages: service, PostgreSQL, load`,
        `${service}, ${postgresMsPerThousand}, ${loadGeneratorMsPerThousand}; ` +
        `machine ${x.cpu.machineBusyPercent} % busy`,
      ]);
    }
  }
  const connect = r.connectMs as Record<string, Summary> | undefined;
  for (const [key, value] of Object.entries(connect ?? {})) {
    rows.push([
      `connect ms p50/p99, ${key.replace("history", "")} messages`,
      `${shownMs(value.p50)} / ${shownMs(value.p99)}`,
    ]);
  }
  const idle = r.idle as { sockets: number; perSocketKiB: number; rssAfterMiB: number } | undefined;
  if (idle) {
    rows.push([
      `memory per idle socket (${idle.sockets} sockets)`,
      `${idle.perSocketKiB} KiB (RSS ${idle.rssAfterMiB} MiB)`,
    ]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log("");
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
}

function memoryGiB(): Promise<number> {
  return Promise.resolve(Math.round(Deno.systemMemoryInfo().total / 1024 ** 3));
}
