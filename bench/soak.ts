/**
 * `deno task soak`: steady load against the service (a `deno task start` subprocess) for a
 * long while, sampling its memory and sockets, to show there is no growth trend. Not in CI.
 *
 *   deno task soak [--minutes 10] [--chats 100] [--rate 100] [--churn 10] [--sample 10]
 *                  [--warmup 60] [--out file.json]
 *
 * Every chat has its customer and its vendor connected; messages go out at `--rate` per
 * second in total, alternating sides, each receiver marking what it gets read now and then;
 * the first 20 vendors also hold a `/v1/ws/chats/` socket. Every sample, `--churn` sockets
 * are closed and opened again (connection churn is where leaks hide). Each `--sample`
 * seconds: the service's RSS, V8 heap, open WebSockets (its own gauge) and file descriptors
 * (sockets among them). At the end: a table, the least-squares slope of each after the
 * warm-up, and whether anything was lost, repeated or out of order.
 */
import postgres from "postgres";
import { commandLine } from "./command_line.ts";
import { rssOf, startServiceProcess } from "./service_process.ts";
import {
  type BenchChat,
  createBenchDatabase,
  createChats,
  dropBenchDatabase,
  localServiceOptions,
  tokenFor,
} from "./setup.ts";

const USAGE = `usage: deno task soak [--minutes 10] [--chats 100] [--rate 100] [--churn 10]
         [--sample 10] [--warmup 60] [--out file.json]
         [--admin-database-url postgres://...] [--nats-url nats://...]`;

const values = commandLine(USAGE, {
  minutes: { type: "string", default: "10" },
  chats: { type: "string", default: "100" },
  rate: { type: "string", default: "100" },
  churn: { type: "string", default: "10" },
  sample: { type: "string", default: "10" },
  warmup: { type: "string", default: "60" },
  ...localServiceOptions,
  out: { type: "string" },
}, { positive: ["minutes", "chats", "rate", "sample"], nonNegative: ["churn", "warmup"] });
const minutes = Number(values.minutes);
const chatCount = Number(values.chats);
const rate = Number(values.rate);
const churn = Number(values.churn);
const sampleMs = Number(values.sample) * 1000;
const warmupMs = Number(values.warmup) * 1000;
const log = (line: string) => console.error(line);

/** One client socket, reopened on churn; counts what it saw of its chat. */
interface Client {
  chat: BenchChat;
  userId: string;
  receiverId: string | null;
  path: string;
  socket: WebSocket | null;
  /** seq of the last chat_message seen on this chat (kept across reopens). */
  lastSeq: number;
}

interface Sample {
  seconds: number;
  rssMiB: number;
  heapMiB: number;
  openSockets: number;
  fds: number;
  tcpSockets: number;
  acked: number;
  errors: number;
  lagMs: number;
}

const counts = { sent: 0, acked: 0, errors: 0, delivered: 0, gaps: 0, duplicates: 0, reopened: 0 };

const adminUrl = values["admin-database-url"];
const databaseUrl = await createBenchDatabase(adminUrl);
// dropped however the run ends, a service that died under it too
await using _database = {
  [Symbol.asyncDispose]: () => dropBenchDatabase(adminUrl, databaseUrl),
};
const secret = crypto.randomUUID() + crypto.randomUUID();
const service = await startServiceProcess({
  DATABASE_URL: databaseUrl,
  NATS_URL: values["nats-url"],
  JWT_SECRET: secret,
  WS_RATE_PER_SECOND: "1000",
  WS_RATE_BURST: "1000",
});
const wsBase = service.baseUrl.replace(/^http/, "ws");
log(`soak: service pid ${service.pid}, ${chatCount} chats, ${rate} messages/s, ${minutes} min`);

const clients: Client[] = [];
/** Taken under load, every `--sample` seconds. */
const samples: Sample[] = [];
/** Taken once the load stopped and the last acks came in; not part of any trend. */
let afterLoad: Sample | undefined;
try {
  const chats = await createChats(databaseUrl, chatCount, `soak${Date.now()}`);
  for (const chat of chats) {
    const path = `/v1/ws/chat/${chat.id}/`;
    clients.push({
      chat,
      userId: chat.customer,
      receiverId: chat.vendor,
      path,
      socket: null,
      lastSeq: 0,
    });
    clients.push({
      chat,
      userId: chat.vendor,
      receiverId: chat.customer,
      path,
      socket: null,
      lastSeq: 0,
    });
  }
  for (const chat of chats.slice(0, 20)) {
    clients.push({
      chat,
      userId: chat.vendor,
      receiverId: null,
      path: "/v1/ws/chats/",
      socket: null,
      lastSeq: 0,
    });
  }
  for (let index = 0; index < clients.length; index += 50) {
    await Promise.all(clients.slice(index, index + 50).map(open));
  }
  log(`soak: ${clients.length} sockets open`);

  const started = performance.now();
  const endAt = started + minutes * 60_000;
  const senders = clients.filter((client) => client.receiverId !== null);
  let lastAcked = 0;
  let lastErrors = 0;
  let nextSampleAt = started;
  let turn = 0;
  while (performance.now() < endAt) {
    // open loop by the clock: whatever the service does, the schedule holds
    const due = Math.floor(((performance.now() - started) / 1000) * rate);
    // a sender whose socket is closed is passed over; when every one is (the service died),
    // the debt waits for the next sample instead of spinning here for ever
    let passedOver = 0;
    while (counts.sent < due && passedOver < senders.length) {
      passedOver = send(senders[turn++ % senders.length]!) ? 0 : passedOver + 1;
    }
    if (performance.now() >= nextSampleAt) {
      const sampled = await takeSample((performance.now() - started) / 1000);
      sampled.acked = counts.acked - lastAcked;
      sampled.errors = counts.errors - lastErrors;
      lastAcked = counts.acked;
      lastErrors = counts.errors;
      samples.push(sampled);
      log(formatRow(sampled));
      nextSampleAt += sampleMs;
      // churn: some sockets go and come back (reconnecting clients)
      const leaving = Array.from({ length: churn }, () => clients[randomIndex(clients.length)]!);
      await Promise.all([...new Set(leaving)].map(reopen));
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  // the last acks and deliveries
  const drainUntil = performance.now() + 10_000;
  while (counts.acked + counts.errors < counts.sent && performance.now() < drainUntil) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  afterLoad = await takeSample((performance.now() - started) / 1000);
} finally {
  for (const client of clients) client.socket?.close();
  await service[Symbol.asyncDispose]();
}
const stored = await storedCount();
report();

function open(client: Client): Promise<void> {
  return new Promise((resolve, reject) => {
    tokenFor(secret, client.userId).then((token) => {
      const socket = new WebSocket(`${wsBase}${client.path}?token=${token}`);
      client.socket = socket;
      const ready = client.receiverId === null ? '{"type":"chats"' : '{"type":"unread_messages"';
      let opened = false;
      socket.onmessage = (event) => {
        const text = event.data as string;
        if (!opened && text.startsWith(ready)) {
          opened = true;
          resolve();
        }
        receive(client, text);
      };
      socket.onclose = (event) => {
        if (!opened) reject(new Error(`socket closed ${event.code} before it was ready`));
      };
    }, reject);
  });
}

async function reopen(client: Client): Promise<void> {
  const socket = client.socket;
  // one the service closed already (1013, 4429) fires no close event again
  if (socket && socket.readyState !== WebSocket.CLOSED) {
    const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    socket.close();
    await closed;
  }
  counts.reopened++;
  await open(client);
}

function receive(client: Client, text: string): void {
  if (text.startsWith('{"type":"chat_message"')) {
    const { message } = JSON.parse(text);
    if (client.receiverId === null) return;
    // what a socket missed while it was away is not this soak's subject: fill by jumping
    if (message.seq <= client.lastSeq) counts.duplicates++;
    else if (message.seq > client.lastSeq + 1 && client.lastSeq !== 0) counts.gaps++;
    client.lastSeq = Math.max(client.lastSeq, message.seq);
    if (message.sender_id !== client.userId) {
      counts.delivered++;
      // now and then the receiver reads up to here
      if (message.seq % 5 === 0) {
        client.socket?.send(JSON.stringify({ action: "read_up_to", seq: message.seq }));
      }
    }
  } else if (text.startsWith('{"type":"ack"')) {
    counts.acked++;
  } else if (text.startsWith('{"type":"error"')) {
    counts.errors++;
  } else if (text.startsWith('{"type":"latest_chat"')) {
    // a reopened socket starts from the newest page, as a reconnecting client does
    const page = JSON.parse(text);
    const last = page.messages.at(-1);
    if (last) client.lastSeq = Math.max(client.lastSeq, last.seq);
  }
}

/** Sends a message from `client`; false when its socket is not open. */
function send(client: Client): boolean {
  const socket = client.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  counts.sent++;
  socket.send(JSON.stringify({
    action: "send_message",
    request_id: `s${counts.sent}`,
    client_id: crypto.randomUUID(),
    receiver_id: client.receiverId,
    media_type: "text",
    content: `soak message ${counts.sent} with a few words in it`,
  }));
  return true;
}

async function takeSample(seconds: number): Promise<Sample> {
  const metrics = await (await fetch(`${service.baseUrl}/metrics`)).text();
  const value = (series: string) => {
    const line = metrics.split("\n").find((candidate) => candidate.startsWith(`${series} `));
    return line === undefined ? 0 : Number(line.slice(series.length + 1));
  };
  const { fds, tcpSockets } = await descriptors(service.pid);
  return {
    seconds: Math.round(seconds),
    rssMiB: round((await rssOf(service.pid)) / 1048576),
    heapMiB: round(value('chat_process_memory_bytes{kind="heap_used"}') / 1048576),
    openSockets: value('chat_ws_open_sockets{endpoint="chat"}') +
      value('chat_ws_open_sockets{endpoint="chats"}'),
    fds,
    tcpSockets,
    acked: 0,
    errors: 0,
    lagMs: round(value("chat_event_loop_lag_seconds") * 1000),
  };
}

/**
 * Open file descriptors of a process, and how many of them are sockets, by `ls` (Deno reads
 * /proc only with every permission).
 */
async function descriptors(pid: number): Promise<{ fds: number; tcpSockets: number }> {
  const output = await new Deno.Command("ls", { args: ["-l", `/proc/${pid}/fd`], stderr: "null" })
    .output();
  const lines = new TextDecoder().decode(output.stdout).split("\n").filter((line) =>
    line.includes(" -> ")
  );
  return {
    fds: lines.length,
    tcpSockets: lines.filter((line) => line.includes("-> socket:")).length,
  };
}

async function storedCount(): Promise<number> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<[{ count: number }]>`select count(*)::int as count from messages`;
    return row!.count;
  } finally {
    await sql.end();
  }
}

/** Least-squares slope (per minute) and R² of `y` over `x` seconds. */
function trend(points: Array<[number, number]>): { perMinute: number; r2: number } {
  const n = points.length;
  if (n < 3) return { perMinute: 0, r2: 0 };
  const mx = points.reduce((sum, [x]) => sum + x, 0) / n;
  const my = points.reduce((sum, [, y]) => sum + y, 0) / n;
  let sxy = 0, sxx = 0, syy = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
    syy += (y - my) ** 2;
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  const r2 = sxx === 0 || syy === 0 ? 0 : (sxy * sxy) / (sxx * syy);
  return { perMinute: round(slope * 60), r2: round(r2) };
}

function report(): void {
  console.log("");
  console.log(header());
  for (const sampled of samples) console.log(formatRow(sampled));
  const steady = samples.filter((sampled) => sampled.seconds * 1000 >= warmupMs);
  const of = (key: keyof Sample) =>
    trend(steady.map((sampled) => [sampled.seconds, sampled[key]] as [number, number]));
  const first = steady[0];
  const last = steady.at(-1);
  // The heap saws up and down with each collection: its lowest point in each minute is what
  // a leak would raise.
  const floors = new Map<number, number>();
  for (const sampled of steady) {
    const minute = Math.floor(sampled.seconds / 60);
    floors.set(minute, Math.min(floors.get(minute) ?? Infinity, sampled.heapMiB));
  }
  const trends = {
    rssMiB: of("rssMiB"),
    heapMiB: of("heapMiB"),
    heapFloorMiB: trend([...floors].map(([minute, floor]) => [minute * 60, floor])),
    openSockets: of("openSockets"),
    fds: of("fds"),
  };
  const seconds = samples.at(-1)?.seconds ?? 0;
  const summary = {
    minutes,
    chats: chatCount,
    sockets: clients.length,
    rate,
    churnPerSample: churn,
    sent: counts.sent,
    acked: counts.acked,
    stored,
    errors: counts.errors,
    delivered: counts.delivered,
    gapsSeen: counts.gaps,
    duplicates: counts.duplicates,
    reopened: counts.reopened,
    ackedPerSecond: round(counts.acked / Math.max(1, seconds)),
    afterWarmup: { from: first, to: last, trends, heapFloorsMiB: [...floors.values()] },
    afterLoad,
  };
  console.log("");
  console.log(`under load, after the ${warmupMs / 1000} s warm-up: least-squares slope (R²)`);
  for (const [name, value] of Object.entries(trends)) {
    console.log(
      `  ${name.padEnd(12)} ${String(value.perMinute).padStart(8)} /min  (R² ${value.r2})`,
    );
  }
  const range = (key: keyof Sample) => {
    const values = steady.map((sampled) => sampled[key]);
    return `${Math.min(...values)}..${Math.max(...values)}`;
  };
  if (first && last) {
    console.log(
      `  RSS ${first.rssMiB} -> ${last.rssMiB} MiB (${
        range("rssMiB")
      }), heap ${first.heapMiB} -> ` +
        `${last.heapMiB} MiB (${range("heapMiB")}), heap floor per minute ${
          [...floors.values()].join(", ")
        } MiB, sockets ${range("openSockets")}, fds ${range("fds")}`,
    );
  }
  if (afterLoad) {
    console.log(
      `  once the load stopped: RSS ${afterLoad.rssMiB} MiB, heap ${afterLoad.heapMiB} MiB`,
    );
  }
  console.log(
    `messages: sent ${counts.sent}, acked ${counts.acked}, stored ${stored}, errors ${counts.errors}, ` +
      `delivered ${counts.delivered}, gaps ${counts.gaps}, duplicates ${counts.duplicates}, ` +
      `sockets reopened ${counts.reopened} (an ack or a message that reached a socket the churn ` +
      `had just closed is not counted)`,
  );
  const out = values.out ?? `bench/results/soak-${Date.now()}.json`;
  Deno.mkdirSync(out.split("/").slice(0, -1).join("/") || ".", { recursive: true });
  Deno.writeTextFileSync(out, JSON.stringify({ summary, samples }, null, 2));
  console.log(`\nJSON: ${out}`);
}

function header(): string {
  return "     s   RSS MiB  heap MiB  WS open   fds  sockets  acked  errors  lag ms";
}

function formatRow(sampled: Sample): string {
  return [
    String(sampled.seconds).padStart(6),
    String(sampled.rssMiB).padStart(9),
    String(sampled.heapMiB).padStart(9),
    String(sampled.openSockets).padStart(8),
    String(sampled.fds).padStart(5),
    String(sampled.tcpSockets).padStart(8),
    String(sampled.acked).padStart(6),
    String(sampled.errors).padStart(7),
    String(sampled.lagMs).padStart(7),
  ].join(" ");
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

function randomIndex(length: number): number {
  return Math.floor(Math.random() * length);
}
