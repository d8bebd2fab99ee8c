/**
 * Overload: many sockets on two instances keep sending, each within its rate, while PostgreSQL
 * stalls (connections open, nothing answered) and after. Every send must be answered within a
 * bound, and once the stall ends every message acknowledged must be stored and delivered once,
 * in seq order, without a restart. The database is reached through the tests' TCP proxy.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { closeThroughDatabaseProxy, startCluster } from "./support/service.ts";
import { joinChat } from "./support/steps.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import { createWatch } from "./support/wait.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

/** The store timeout (db/errors.ts). */
const STORE_TIMEOUT_MS = 5_000;
/** What a send may take while the database stalls: the store timeout, and a loaded machine's. */
const ANSWER_BOUND_MS = 7_000;

Deno.test("with PostgreSQL stalled under steady sends from many sockets on two instances, every send is answered within the store timeout, and every message acknowledged is stored and delivered once, in order", async () => {
  const cluster = await startCluster({
    instances: 0,
    env: { WS_RATE_PER_SECOND: "1000", WS_RATE_BURST: "1000", SHUTDOWN_TIMEOUT: "1" },
  });
  await using proxy = startTcpProxy(cluster.databaseUrl);
  await using _cluster = {
    [Symbol.asyncDispose]: () => closeThroughDatabaseProxy(cluster, proxy),
  };
  // both instances write every chat: each one's unread snapshots are made stale by the other's
  for (let n = 0; n < 2; n++) await cluster.startInstance({ DATABASE_URL: proxy.url });
  const sides: Array<{ socket: TestSocket; user: string; peer: string; chatId: string }> = [];
  for (let n = 0; n < 6; n++) {
    const [customer, vendor] = [`customer-${n}`, `vendor-${n}`];
    const chat = await cluster.main.service.chat.createChat(customer, vendor);
    for (const [user, peer, instance] of [[customer, vendor, 0], [vendor, customer, 1]] as const) {
      const socket = await joinChat(cluster, user, chat.id, instance);
      sides.push({ socket, user, peer, chatId: chat.id });
    }
  }

  let sending = true;
  const slow: string[] = [];
  const acked = new Map<string, Frame>();
  let refusedUnavailable = 0;
  const watch = createWatch();
  /** Sends one message after another, each sent again with its client_id until acknowledged. */
  async function keepSending(side: (typeof sides)[number]) {
    for (let n = 1; sending; n++) {
      const clientId = `${side.user}-${n}`;
      for (let answered = false; !answered;) {
        const started = performance.now();
        const reply = await side.socket.request({
          action: "send_message",
          receiver_id: side.peer,
          media_type: "text",
          content: clientId,
          client_id: clientId,
        }, 30_000);
        const ms = Math.round(performance.now() - started);
        if (ms > ANSWER_BOUND_MS) slow.push(`${clientId} answered ${reply.type} after ${ms} ms`);
        if (reply.type === "ack") {
          acked.set(clientId, reply.message);
          answered = true;
        } else {
          assert.equal(reply.code, "unavailable", JSON.stringify(reply));
          refusedUnavailable++;
        }
        watch.changed();
      }
    }
  }
  const senders = sides.map(keepSending);
  const ackedAtLeast = (count: number) =>
    watch.until(() => acked.size >= count || undefined, `${count} sends acknowledged`, 20_000);
  await ackedAtLeast(2 * sides.length);
  proxy.stall();
  await proxy.held();
  // a hung server or a partition: longer than two store timeouts, the most a send chained
  await new Promise((resolve) => setTimeout(resolve, 2 * STORE_TIMEOUT_MS));
  proxy.restore();
  await ackedAtLeast(acked.size + 2 * sides.length);
  sending = false;
  await Promise.all(senders);
  assert.ok(refusedUnavailable > 0, "the stall was met");
  assert.deepEqual(slow, [], "every send was answered within the bound");

  // every acknowledged message is stored once, as acknowledged
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  let rows: Array<{ chat_id: string; seq: number; client_id: string }>;
  try {
    rows = [...await sql<typeof rows>`select chat_id, seq, client_id from messages`];
  } finally {
    await sql.end();
  }
  const byClientId = new Map(rows.map((row) => [row.client_id, row]));
  assert.equal(byClientId.size, rows.length, "no client_id stored twice");
  for (const [clientId, message] of acked) {
    assert.equal(byClientId.get(clientId)?.seq, message.seq, `${clientId} stored as acknowledged`);
  }
  // both sides get every message of their chat once, in seq order
  for (const side of sides) {
    const stored = rows.filter((row) => row.chat_id === side.chatId).length;
    await side.socket.next(
      (frame) => frame.type === "chat_message" && frame.message.seq === stored,
      `${side.user}'s chat_message seq ${stored}`,
      10_000,
    );
    const delivered = side.socket.frames.filter((frame) => frame.type === "chat_message")
      .map((frame) => frame.message.seq);
    assert.deepEqual(delivered, Array.from({ length: stored }, (_, i) => i + 1), side.user);
  }
});
