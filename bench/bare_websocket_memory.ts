/**
 * The floor under "memory per idle socket": a bare Deno.serve + Deno.upgradeWebSocket server
 * (no chat service) holding 10,000 idle sockets, measured the way `deno task bench` measures
 * the service. Run: deno run -A bench/bare_websocket_memory.ts [--sockets 10000]
 */
import { commandLine } from "./command_line.ts";
import { freePort, rssOf } from "./service_process.ts";

const values = commandLine("usage: deno run -A bench/bare_websocket_memory.ts [--sockets 10000]", {
  sockets: { type: "string", default: "10000" },
}, { positive: ["sockets"] });
const count = Number(values.sockets);
const port = await freePort();
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "eval",
    `Deno.serve({ port: ${port}, hostname: "127.0.0.1", onListen() {} }, (req) => {
       const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: 60 });
       socket.onopen = () => socket.send('{"type":"latest_chat"}');
       return response;
     });`,
  ],
  stdout: "null",
}).spawn();
try {
  for (let tries = 0;; tries++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch (error) {
      if (tries > 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  const before = await rssOf(server.pid);
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, () =>
        new Promise<void>((resolve) => {
          const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
          socket.onmessage = () => resolve();
          sockets.push(socket);
        })),
    );
  }
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const after = await rssOf(server.pid);
  console.log(
    `bare Deno WebSocket server, ${sockets.length} idle sockets: RSS ${
      Math.round(before / 1048576)
    } -> ${Math.round(after / 1048576)} MiB, ${
      ((after - before) / sockets.length / 1024).toFixed(1)
    } KiB per socket`,
  );
  for (const socket of sockets) socket.close();
} finally {
  server.kill("SIGTERM");
  await server.status;
}
