/**
 * The client library through bad networks (tests/support/tcp_proxy.ts) whose faults change at
 * random every few tens of milliseconds: connections cut, stalled, dropped in the middle of a
 * client's frame, slowed, bytes passed one at a time. Two customers on /v1/ws/chat/{id}/ of two
 * instances and their vendor on /v1/ws/chats/ send in bursts throughout; once the network heals,
 * every send is acknowledged (none rejected), stored once, in the order each sender made it, and
 * every client has had every message of its chats once, in seq order.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { type ChatClient, createChatClient, type Message } from "../client/mod.ts";
import { ClientEvents } from "./support/client_events.ts";
import { startCluster } from "./support/service.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp_proxy.ts";

/** Numbers in [0, 1) from a seed, so that a run's faults can be told again. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Side {
  user: string;
  /** The chat of its socket; undefined: /v1/ws/chats/. */
  chatId: string | undefined;
  targets: Array<{ chatId: string; receiver: string }>;
  network: TcpProxy;
  client: ChatClient;
  events: ClientEvents;
  sends: Array<Promise<Message>>;
  contents: string[];
}

Deno.test("under a network whose faults change at random, every send is stored once, in order, and every client has every message once, in order", async () => {
  const seed = 7;
  const random = seeded(seed);
  // the senders here outrun WS_RATE_PER_SECOND: their sends would be refused rate_limited and
  // wait out backoffs (see README, the outbox), which is not what this test is about
  await using cluster = await startCluster({
    instances: 2,
    env: { WS_RATE_PER_SECOND: "1000", WS_RATE_BURST: "1000" },
  });
  const chatA = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  const chatB = await cluster.main.service.chat.createChat("cust-2", "vend-1");
  const specs = [
    { user: "cust-1", chatId: chatA.id, targets: [{ chatId: chatA.id, receiver: "vend-1" }] },
    { user: "cust-2", chatId: chatB.id, targets: [{ chatId: chatB.id, receiver: "vend-1" }] },
    {
      user: "vend-1",
      chatId: undefined,
      targets: [{ chatId: chatA.id, receiver: "cust-1" }, { chatId: chatB.id, receiver: "cust-2" }],
    },
  ];
  const sides: Side[] = [];
  try {
    for (const [index, spec] of specs.entries()) {
      const instance = cluster.instances[index === 0 ? 0 : 1]!;
      const network = startTcpProxy({ hostname: "127.0.0.1", port: instance.service.port });
      const client = createChatClient({
        url: `http://127.0.0.1:${network.port}`,
        token: await cluster.token(spec.user),
        ...(spec.chatId === undefined ? {} : { chatId: spec.chatId }),
        timeoutMs: 300,
        heartbeatMs: 200,
        connectTimeoutMs: 400,
        backoff: { initialMs: 10, maxMs: 100 },
      });
      sides.push({
        ...spec,
        network,
        client,
        events: new ClientEvents(client),
        sends: [],
        contents: [],
      });
    }
    for (const side of sides) await side.client.ready();

    const until = performance.now() + 6_000;
    const faults = (async () => {
      while (performance.now() < until) {
        const { network } = sides[Math.floor(random() * sides.length)]!;
        const roll = random();
        if (roll < 0.3) network.dropConnections();
        else if (roll < 0.45) {
          network.stall("both");
          await sleep(50 + random() * 500);
          network.restore();
        } else if (roll < 0.6) network.oneByteWrites = !network.oneByteWrites;
        else if (roll < 0.7) network.delayMs = random() < 0.5 ? 0 : Math.floor(random() * 30);
        else if (roll < 0.8) {
          network.dropAfterUpstreamBytes = random() < 0.6
            ? undefined
            : 300 + Math.floor(random() * 2_000);
        }
        await sleep(random() * 200);
      }
      for (const { network } of sides) {
        network.restore();
        network.oneByteWrites = false;
        network.delayMs = 0;
        network.dropAfterUpstreamBytes = undefined;
      }
    })();
    const sending = sides.map(async (side) => {
      while (performance.now() < until) {
        for (let burst = 1 + Math.floor(random() * 3); burst > 0; burst--) {
          const target = side.targets[Math.floor(random() * side.targets.length)]!;
          const content = `${side.user} ${side.contents.length + 1}`;
          side.contents.push(content);
          const sent = side.client.request({
            action: "send_message",
            ...(side.chatId === undefined ? { chat_id: target.chatId } : {}),
            receiver_id: target.receiver,
            media_type: "text",
            content,
          });
          sent.catch(() => {});
          side.sends.push(sent);
        }
        await sleep(random() * 150);
      }
    });
    await Promise.all([faults, ...sending]);

    for (const side of sides) {
      const settled = await Promise.allSettled(side.sends);
      const rejected = settled.flatMap((result) =>
        result.status === "rejected" ? [`${result.reason}`] : []
      );
      assert.deepEqual(rejected, [], `${side.user}'s sends (seed ${seed})`);
      const stored = settled.map((result) => (result as PromiseFulfilledResult<Message>).value);
      assert.deepEqual(stored.map((message) => message.content), side.contents);
      for (const chatId of [chatA.id, chatB.id]) {
        const seqs = stored.filter((message) => message.chat_id === chatId).map((m) => m.seq);
        assert.deepEqual(seqs.toSorted((a, b) => a - b), seqs, `${side.user}'s sends in order`);
      }
    }

    const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
    const lastSeq = new Map<string, number>();
    try {
      for (const chatId of [chatA.id, chatB.id]) {
        const [row] = await sql<[{ count: number; last: number }]>`
          select count(*)::int as count, coalesce(max(seq), 0)::int as last
          from messages where chat_id = ${chatId}`;
        assert.equal(row!.count, row!.last, "a seq stored twice, or missing");
        lastSeq.set(chatId, row!.last);
      }
    } finally {
      await sql.end();
    }
    const sent = sides.reduce((sum, side) => sum + side.contents.length, 0);
    assert.equal(lastSeq.get(chatA.id)! + lastSeq.get(chatB.id)!, sent, "every send stored once");

    for (const side of sides) {
      for (const chatId of side.chatId === undefined ? [chatA.id, chatB.id] : [side.chatId]) {
        const expected = Array.from({ length: lastSeq.get(chatId)! }, (_, index) => index + 1);
        // the first page at the first connection is the latest_chat event, the rest chat_message
        const first = side.chatId === undefined
          ? []
          : side.events.all("latest_chat")[0]!.messages.map((message) => message.seq);
        await side.events.seqs(chatId, expected.length - first.length);
        const seqs = side.events.all("chat_message")
          .filter((frame) => frame.chat_id === chatId)
          .map((frame) => frame.message.seq);
        assert.deepEqual([...first, ...seqs], expected, `${side.user}'s messages of ${chatId}`);
      }
      assert.deepEqual(side.events.all("invalid_frame"), []);
    }
  } finally {
    for (const side of sides) {
      await side.client.close();
      side.events[Symbol.dispose]();
      await side.network[Symbol.asyncDispose]();
    }
  }
});
