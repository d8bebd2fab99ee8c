/**
 * How much memory media costs the service: N clients each send one large video at once, and
 * the service's resident memory (VmRSS from /proc/<pid>/status) is sampled every 10 ms.
 *
 *   deno run --allow-net --allow-env --allow-read --allow-write --allow-run --allow-sys \
 *     bench/media_memory.ts [--clients 10] [--mib 20] [--backend postgres|nats]
 *     [--modes base64,post,get] [--out file.json]
 *
 * Each mode runs against a service of its own (a subprocess started as `deno task start`), so
 * one mode's garbage does not count against the next: `base64` sends the video as base64 in a
 * `send_message` frame, `post` uploads the raw bytes with `POST /v1/media`, `get` uploads them
 * (unmeasured) and then measures N clients downloading them at once. Every video is different
 * (random bytes behind a real MP4 header), so deduplication saves nothing.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { commandLine } from "./command_line.ts";
import { startServiceProcess } from "./service_process.ts";
import {
  type BenchChat,
  createBenchDatabase,
  createChats,
  dropBenchDatabase,
  localServiceOptions,
  tokenFor,
} from "./setup.ts";

const USAGE = `usage: deno run -A bench/media_memory.ts [--clients 10] [--mib 20]
         [--backend postgres|nats] [--modes base64,post,get] [--out file.json]
         [--admin-database-url postgres://...] [--nats-url nats://...]`;

const values = commandLine(USAGE, {
  clients: { type: "string", default: "10" },
  mib: { type: "string", default: "20" },
  backend: { type: "string", default: "postgres" },
  modes: { type: "string", default: "base64,post,get" },
  ...localServiceOptions,
  out: { type: "string" },
}, { positive: ["clients", "mib"] });

const MiB = 1024 * 1024;
const clients = Number(values.clients);
const size = Number(values.mib) * MiB;
const log = (line: string) => console.error(line);
const header = await Deno.readFile(new URL("../tests/fixtures/video.mp4", import.meta.url));

type Mode = "base64" | "post" | "get";

interface Measurement {
  mode: Mode;
  backend: string;
  clients: number;
  fileMiB: number;
  /** What the clients had sent or asked for, together, while it was measured. */
  inFlightMiB: number;
  baselineMiB: number;
  peakMiB: number;
  afterMiB: number;
  growthMiB: number;
  /** Growth of RSS over the bytes in flight. */
  growthPerInFlight: number;
  seconds: number;
  ok: number;
}

function video(): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65_536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(at + 65_536, size)));
  }
  bytes.set(header);
  return bytes;
}

/** Samples VmRSS of `pid` every 10 ms with a shell loop, so the bench needs no --allow-all. */
function sampleRss(pid: number) {
  const child = new Deno.Command("sh", {
    args: ["-c", `while grep VmRSS /proc/${pid}/status; do sleep 0.01; done`],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let latest = 0;
  let peak = 0;
  const reading = (async () => {
    let buffered = "";
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += text;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        const kib = Number(/(\d+)/.exec(line)?.[1] ?? 0);
        latest = kib * 1024;
        peak = Math.max(peak, latest);
      }
    }
  })();
  return {
    get latest() {
      return latest;
    },
    /** Forgets the peak so far: the next one is of what follows. */
    resetPeak() {
      peak = latest;
    },
    get peak() {
      return peak;
    },
    async stop() {
      child.kill();
      await child.status;
      await reading;
    },
  };
}

async function settle(sampler: ReturnType<typeof sampleRss>): Promise<number> {
  // a moment of idleness, then the average of what is left
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const readings: number[] = [];
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    readings.push(sampler.latest);
  }
  return readings.reduce((a, b) => a + b, 0) / readings.length;
}

async function openSocket(url: string): Promise<WebSocket & { replies: Map<string, unknown> }> {
  const socket = Object.assign(new WebSocket(url), { replies: new Map<string, unknown>() });
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  return socket;
}

function request(
  socket: WebSocket,
  frame: string,
  requestId: string,
): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const listener = (event: MessageEvent) => {
      const reply = JSON.parse(event.data);
      if (reply.request_id !== requestId) return;
      socket.removeEventListener("message", listener);
      resolve(reply);
    };
    socket.addEventListener("message", listener);
    socket.send(frame);
  });
}

async function upload(
  baseUrl: string,
  token: string,
  chat: BenchChat,
  body: Uint8Array<ArrayBuffer>,
): Promise<{ status: number; media_id?: string }> {
  const response = await fetch(`${baseUrl}/v1/media?chat_id=${chat.id}&media_type=video`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body,
  });
  return { status: response.status, ...(await response.json()) };
}

async function measure(mode: Mode, adminUrl: string): Promise<Measurement> {
  const databaseUrl = await createBenchDatabase(adminUrl);
  const secret = crypto.randomUUID() + crypto.randomUUID();
  const bucket = `bench_media_${Date.now()}`;
  await using service = await startServiceProcess({
    DATABASE_URL: databaseUrl,
    NATS_URL: values["nats-url"],
    JWT_SECRET: secret,
    MEDIA_BACKEND: values.backend,
    MEDIA_NATS_BUCKET: bucket,
  });
  const sampler = sampleRss(service.pid);
  try {
    const chats = await createChats(databaseUrl, clients, `media${Date.now()}`);
    const tokens = await Promise.all(chats.map((chat) => tokenFor(secret, chat.customer)));
    const wsBase = service.baseUrl.replace(/^http/, "ws");
    const sockets = await Promise.all(
      chats.map((chat, i) => openSocket(`${wsBase}/v1/ws/chat/${chat.id}/?token=${tokens[i]}`)),
    );
    // warm up every path on a small file, so the first big one pays no JIT or pool start-up
    const small = header.toBase64();
    await Promise.all(sockets.map((socket, i) =>
      request(
        socket,
        JSON.stringify({
          action: "send_message",
          request_id: "warm",
          receiver_id: chats[i]!.vendor,
          media_type: "video",
          video: small,
        }),
        "warm",
      )
    ));
    await Promise.all(chats.map((chat, i) => upload(service.baseUrl, tokens[i]!, chat, header)));

    const files = chats.map(() => video());
    let run: () => Promise<boolean[]>;
    let inFlight = clients * size;
    if (mode === "base64") {
      const frames = files.map((file, i) =>
        JSON.stringify({
          action: "send_message",
          request_id: "big",
          receiver_id: chats[i]!.vendor,
          media_type: "video",
          video: file.toBase64(),
        })
      );
      inFlight = frames.reduce((sum, frame) => sum + frame.length, 0);
      run = () =>
        Promise.all(
          sockets.map(async (socket, i) =>
            (await request(socket, frames[i]!, "big")).type === "ack"
          ),
        );
    } else if (mode === "post") {
      run = () =>
        Promise.all(
          chats.map(async (chat, i) =>
            (await upload(service.baseUrl, tokens[i]!, chat, files[i]!)).status === 201
          ),
        );
    } else {
      const ids = await Promise.all(
        chats.map(async (chat, i) =>
          (await upload(service.baseUrl, tokens[i]!, chat, files[i]!)).media_id
        ),
      );
      run = () =>
        Promise.all(ids.map(async (id, i) => {
          const response = await fetch(`${service.baseUrl}/v1/media/${id}`, {
            headers: { authorization: `Bearer ${tokens[i]}` },
          });
          let received = 0;
          for await (const chunk of response.body!) received += chunk.length;
          return response.status === 200 && received === size;
        }));
    }

    const baseline = await settle(sampler);
    sampler.resetPeak();
    const started = performance.now();
    const outcomes = await run();
    const seconds = (performance.now() - started) / 1000;
    const peak = sampler.peak;
    const after = await settle(sampler);
    for (const socket of sockets) socket.close();
    const result: Measurement = {
      mode,
      backend: values.backend,
      clients,
      fileMiB: size / MiB,
      inFlightMiB: round(inFlight / MiB),
      baselineMiB: round(baseline / MiB),
      peakMiB: round(peak / MiB),
      afterMiB: round(after / MiB),
      growthMiB: round((peak - baseline) / MiB),
      growthPerInFlight: round((peak - baseline) / inFlight),
      seconds: round(seconds),
      ok: outcomes.filter(Boolean).length,
    };
    log(JSON.stringify(result));
    return result;
  } finally {
    await sampler.stop();
    await dropBenchDatabase(adminUrl, databaseUrl);
    if (values.backend === "nats") await destroyBucket(bucket);
  }
}

async function destroyBucket(bucket: string): Promise<void> {
  const nc = await connect({ servers: values["nats-url"] });
  try {
    await (await jetstreamManager(nc)).streams.delete(`OBJ_${bucket}`).catch(() => false);
  } finally {
    await nc.close();
  }
}

const round = (value: number) => Math.round(value * 100) / 100;

const results: Measurement[] = [];
for (const mode of values.modes.split(",") as Mode[]) {
  log(`${mode}: ${clients} clients × ${values.mib} MiB video, ${values.backend} backend...`);
  results.push(await measure(mode, values["admin-database-url"]));
}

const out = values.out ?? `bench/results/media-memory-${Date.now()}.json`;
await Deno.mkdir(out.split("/").slice(0, -1).join("/") || ".", { recursive: true });
await Deno.writeTextFile(out, JSON.stringify(results, null, 2));
console.log(
  "\nmode    backend   clients × MiB  in flight  baseline  peak     growth   growth/in flight  s     ok",
);
for (const r of results) {
  console.log(
    [
      r.mode.padEnd(7),
      r.backend.padEnd(9),
      `${r.clients} × ${r.fileMiB}`.padEnd(14),
      `${r.inFlightMiB} MiB`.padEnd(10),
      `${r.baselineMiB} MiB`.padEnd(9),
      `${r.peakMiB} MiB`.padEnd(8),
      `${r.growthMiB} MiB`.padEnd(8),
      `×${r.growthPerInFlight}`.padEnd(17),
      String(r.seconds).padEnd(5),
      `${r.ok}/${r.clients}`,
    ].join(" "),
  );
}
console.log(`\nJSON: ${out}`);
