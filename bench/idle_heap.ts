/**
 * The JavaScript heap each idle socket holds in the service: the steady part of "memory per
 * idle socket", which `deno task bench` measures as RSS (and RSS moves by several KiB between
 * runs of one build, with whatever the heap and the allocator kept from before). The service
 * runs in this process, on a fresh database and the local NATS; the sockets are opened by a
 * child process, two per chat (customer and vendor) on the single-chat endpoint; the heap is
 * read after forced collections, before and after they are open.
 *
 *   deno task bench:heap [--sockets 2000]
 */
import { socketUrl } from "../client/mod.ts";
import { loadConfig } from "../config.ts";
import { startService } from "../main.ts";
import { commandLine } from "./command_line.ts";
import {
  createBenchDatabase,
  createChats,
  dropBenchDatabase,
  localServiceOptions,
  tokenFor,
} from "./setup.ts";

const USAGE = `usage: deno task bench:heap [--sockets 2000]
         [--admin-database-url postgres://...] [--nats-url nats://...]`;

const values = commandLine(USAGE, {
  sockets: { type: "string", default: "2000" },
  ...localServiceOptions,
}, { positive: ["sockets"] });
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc (deno task bench:heap does)");
const socketCount = Number(values.sockets);
if (socketCount < 2) {
  console.error(`--sockets must be 2 or more (two per chat), not "${values.sockets}"\n${USAGE}`);
  Deno.exit(2);
}

/** The heap in use once what can be collected is gone. */
async function settledHeap(): Promise<number> {
  gc!();
  gc!();
  // what the collections handed to finalizers and weak callbacks goes on the next turns
  await new Promise((resolve) => setTimeout(resolve, 300));
  gc!();
  return Deno.memoryUsage().heapUsed;
}

/** Opens every socket of `urls` from a child process; resolves once each has its first frame. */
async function openFromChild(urls: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const urls = (await new Response(Deno.stdin.readable).text()).split("\\n").filter(Boolean);
       const sockets = [];
       let next = 0;
       const openNext = async () => {
         while (next < urls.length) {
           const url = urls[next++];
           await new Promise((resolve, reject) => {
             const socket = new WebSocket(url);
             sockets.push(socket);
             socket.onmessage = () => { socket.onmessage = null; resolve(); };
             socket.onclose = (event) => reject(new Error("closed " + event.code));
           });
         }
       };
       await Promise.all(Array.from({ length: 50 }, openNext));
       console.log("open");
       setInterval(() => {}, 1 << 30);`,
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(urls.join("\n") + "\n"));
  await writer.close();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let printed = "";
  while (!printed.includes("open")) {
    const { value, done } = await lines.read();
    if (done) throw new Error("the child that opens the sockets ended before they were open");
    printed += value;
  }
  return {
    async [Symbol.asyncDispose]() {
      await lines.cancel();
      child.kill();
      await child.status;
    },
  };
}

const adminUrl = values["admin-database-url"];
const databaseUrl = await createBenchDatabase(adminUrl);
try {
  const secret = crypto.randomUUID() + crypto.randomUUID();
  const service = await startService(loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    GRPC_ENABLED: "0",
    DATABASE_URL: databaseUrl,
    NATS_URL: values["nats-url"],
    JWT_SECRET: secret,
    WS_MAX_SOCKETS_PER_USER: "100000",
  }));
  try {
    const chats = await createChats(databaseUrl, Math.ceil(socketCount / 2), "heap");
    const urls: string[] = [];
    for (const chat of chats) {
      for (const user of [chat.customer, chat.vendor]) {
        const token = await tokenFor(secret, user);
        urls.push(socketUrl(`ws://127.0.0.1:${service.port}`, chat.id, token));
      }
    }
    urls.length = socketCount;
    const before = await settledHeap();
    await using _sockets = await openFromChild(urls);
    const after = await settledHeap();
    const perSocket = Math.round((after - before) / socketCount);
    console.log(
      `JS heap per idle socket: ${perSocket} bytes (${socketCount} sockets on ${chats.length} ` +
        `chats; heap ${(before / 2 ** 20).toFixed(1)} -> ${(after / 2 ** 20).toFixed(1)} MiB; ` +
        `${navigator.hardwareConcurrency} cores)`,
    );
  } finally {
    await service.close();
  }
} finally {
  await dropBenchDatabase(adminUrl, databaseUrl);
}
// Deno keeps each server-side socket's idle ping timer after the socket closed, until it fires
// (WS_IDLE_TIMEOUT_SECONDS / 2): the process would wait that long for nothing.
Deno.exit(0);
