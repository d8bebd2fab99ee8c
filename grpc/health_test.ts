import assert from "node:assert/strict";

/**
 * Runs `body` in a process of its own with `gc()` at hand, after a gRPC server with health only
 * is listening at `address` and a client of it is `client`; what it prints.
 */
async function runWithHealthServer(body: string): Promise<string> {
  const health = new URL("./health.ts", import.meta.url).href;
  const adminClient = new URL("../tests/support/admin_client.ts", import.meta.url).href;
  const script = `import * as grpc from "@grpc/grpc-js";
import { createHealthReporter } from "${health}";
import { createAdminClient } from "${adminClient}";
const server = new grpc.Server();
const reporter = createHealthReporter({
  check: () => Promise.resolve({ ready: true }),
  subscribe: (listener) => (listener({ ready: true }), () => {}),
});
reporter.addToServer(server);
const port = await new Promise((resolve, reject) =>
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) =>
    error ? reject(error) : resolve(port)));
await reporter.start();
const client = await createAdminClient("127.0.0.1:" + port, { token: null });
${body}
client.close();
reporter.stop();
server.forceShutdown();`;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", "--v8-flags=--expose-gc", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(code, 0, decoder.decode(stderr));
  return decoder.decode(stdout);
}

Deno.test("a health Watch of a service the server does not have answers SERVICE_UNKNOWN and leaves nothing behind once cancelled", async () => {
  // Health needs no token: each name a caller watches, kept after its stream ended, would be
  // memory it takes for good, 64 KiB a call (the longest request taken)
  const printed = await runWithHealthServer(`
const heap = () => {
  for (let i = 0; i < 3; i++) globalThis.gc();
  return Deno.memoryUsage().heapUsed;
};
const watchOnce = (service) => new Promise((resolve, reject) => {
  const stream = client.watchHealth(service);
  let status;
  stream.on("data", (reply) => {
    status = reply.status;
    stream.cancel();
  });
  stream.on("error", () => {});
  stream.on("status", () => status ? resolve(status) : reject(new Error("no status")));
});
const NAMES = 120;
const NAME_CHARS = 60_000;
// warm up the server and the client, so that what they make once is not counted
for (let i = 0; i < 5; i++) await watchOnce("warm-up-" + i);
assert(await watchOnce("") === "SERVING");
await new Promise((resolve) => setTimeout(resolve, 200));
const before = heap();
const statuses = new Set();
for (let i = 0; i < NAMES; i++) {
  statuses.add(await watchOnce(String(i).padStart(NAME_CHARS, "x")));
}
// the server hears each cancel a moment after the client
await new Promise((resolve) => setTimeout(resolve, 500));
const grown = heap() - before;
console.log(JSON.stringify({ statuses: [...statuses], grown, names: NAMES * NAME_CHARS }));
function assert(ok) { if (!ok) throw new Error("assertion failed"); }
`);
  const { statuses, grown, names } = JSON.parse(printed.trim().split("\n").at(-1)!);
  assert.deepEqual(statuses, ["SERVICE_UNKNOWN"]);
  assert.ok(
    grown < names / 4,
    `the heap grew by ${grown} bytes after ${names} bytes of service names were watched and left`,
  );
});
