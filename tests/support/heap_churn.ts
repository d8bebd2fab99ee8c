/**
 * Drives one churn pattern against a real service in this process and prints, as one JSON line,
 * how much the JavaScript heap grew over it: `{"cycles":…,"grown":…}` (bytes, after full
 * collections). Run with `--v8-flags=--expose-gc` (tests/churn_test.ts does): a service that
 * runs for weeks must give back what each cycle took.
 *
 *   deno run -A --v8-flags=--expose-gc tests/support/heap_churn.ts <pattern> <cycles>
 */
import { startCluster, type TestCluster } from "./service.ts";

const gc = Reflect.get(globalThis, "gc");
if (typeof gc !== "function") throw new Error("run with --v8-flags=--expose-gc");

function heapUsed(): number {
  for (let i = 0; i < 4; i++) gc();
  return Deno.memoryUsage().heapUsed;
}

/** A bare WebSocket that only counts the frames of each type: it keeps none of them. */
function countingSocket(url: string) {
  const socket = new WebSocket(url);
  const counts = new Map<string, number>();
  let wake = () => {};
  socket.onmessage = (event) => {
    const { type } = JSON.parse(event.data);
    counts.set(type, (counts.get(type) ?? 0) + 1);
    wake();
  };
  const closed = new Promise((resolve) => socket.onclose = resolve);
  return {
    count: (type: string) => counts.get(type) ?? 0,
    /** Waits until `type` was received `count` times (the caller's test has a deadline). */
    async until(type: string, count: number): Promise<void> {
      while ((counts.get(type) ?? 0) < count) await new Promise<void>((resolve) => wake = resolve);
    },
    async close(): Promise<void> {
      socket.close();
      await closed;
    },
  };
}

type Pattern = (cluster: TestCluster) => Promise<{
  cycle: () => Promise<void>;
  end: () => Promise<void>;
}>;

const patterns: Record<string, Pattern> = {
  /**
   * A vendor member's chats socket, open throughout, while the member is removed from the vendor
   * and added back: each time it loses the vendor's chats and takes them in again.
   */
  async member_removed_and_added(cluster) {
    const service = cluster.main.service.chat;
    for (let i = 0; i < 40; i++) await service.createChat(`customer-${i}`, "vendor-1");
    await service.addVendorMember("vendor-1", "agent-1", "agent");
    const agent = countingSocket(
      `${cluster.main.wsUrl}/v1/ws/chats/?token=${await cluster.token("agent-1")}`,
    );
    await agent.until("chats", 1);
    return {
      async cycle() {
        const lists = agent.count("chats");
        await service.removeVendorMember("vendor-1", "agent-1");
        await agent.until("chats", lists + 1);
        await service.addVendorMember("vendor-1", "agent-1", "agent");
        await agent.until("chats", lists + 2);
      },
      end: () => agent.close(),
    };
  },
};

const [name = "", cyclesText = "100"] = Deno.args;
const pattern = patterns[name];
if (!pattern) throw new Error(`no pattern ${name}: one of ${Object.keys(patterns).join(", ")}`);
const cycles = Number(cyclesText);
await using cluster = await startCluster();
const { cycle, end } = await pattern(cluster);
// what the first cycles make once (compiled code, pools, caches filling) is not counted
for (let i = 0; i < 20; i++) await cycle();
const before = heapUsed();
for (let i = 0; i < cycles; i++) await cycle();
const grown = heapUsed() - before;
await end();
console.log(JSON.stringify({ cycles, grown }));
