/**
 * PostgreSQL ending the service's connections under load (a restart, a failover, an operator's
 * pg_terminate_backend): the service keeps running and its pool reconnects; a send answered
 * with an error is sent again with its client_id, as the contract tells clients to, and every
 * message ends up stored once and delivered once, in order.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { signDevToken } from "../auth/sign.ts";
import { freshDatabase } from "./support/database.ts";
import {
  createChatIn,
  serviceEnvironment,
  startServiceProcess,
} from "./support/service_process.ts";
import { within } from "./support/wait.ts";
import { TestSocket } from "./support/ws_client.ts";

const CHATS = 4;
const MESSAGES_PER_CHAT = 60;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("when PostgreSQL ends the service's connections under load, the service keeps running and every message is stored once and delivered in order", async () => {
  await using database = await freshDatabase();
  const env: Record<string, string> = {
    ...serviceEnvironment({ databaseUrl: database.url }),
    GRPC_ENABLED: "0",
  };
  await using service = await startServiceProcess(env);
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  const pairs = await Promise.all(
    Array.from({ length: CHATS }, async (_, n) => {
      const [customerId, vendorId] = [`customer-${n}`, `vendor-${n}`];
      const chatId = await createChatIn(database.url, customerId, vendorId);
      const open = async (userId: string) =>
        await TestSocket.open(`${service.wsUrl}/v1/ws/chat/${chatId}/`, {
          token: await signDevToken(env.JWT_SECRET!, userId),
        });
      return { n, vendorId, customer: await open(customerId), vendor: await open(vendorId) };
    }),
  );
  let endConnections: Promise<void> = Promise.resolve();
  try {
    // for two seconds every connection is ended soon after it is made, some of them while
    // postgres.js is still reading their types
    endConnections = (async () => {
      await sleep(300);
      for (const until = performance.now() + 2_000; performance.now() < until;) {
        await sql`
          select pg_terminate_backend(pid) from pg_stat_activity
          where datname = current_database() and application_name like 'chat-%'`;
        await sleep(10);
      }
    })();
    await Promise.all(pairs.map(async ({ n, vendorId, customer }) => {
      for (let i = 0; i < MESSAGES_PER_CHAT; i++) {
        const send = { action: "send_message", receiver_id: vendorId, media_type: "text" };
        const frame = { ...send, content: `message ${i}`, client_id: `c${n}-${i}` };
        // sent again until acknowledged, each time with the same client_id
        for (let answer = await customer.request(frame, 10_000); answer.type !== "ack";) {
          assert.equal(answer.code, "unavailable", JSON.stringify(answer));
          await sleep(100);
          answer = await customer.request(frame, 10_000);
        }
        await sleep(25);
      }
    }));
    await endConnections;

    const exited = await Promise.race([
      service.status.then(() => true),
      sleep(100).then(() => false),
    ]);
    assert.equal(exited, false, "the service is still running");
    const stored = await sql<Array<{ client_id: string; copies: number }>>`
      select client_id, count(*)::int as copies from messages group by client_id`;
    assert.equal(stored.length, CHATS * MESSAGES_PER_CHAT);
    assert.deepEqual(stored.filter((row) => row.copies !== 1), []);
    for (const { vendor } of pairs) {
      await within(
        (async () => {
          while (vendor.pending("chat_message").length < MESSAGES_PER_CHAT) await sleep(50);
        })(),
        15_000,
        "every message to reach the vendor",
      );
      assert.deepEqual(
        vendor.pending("chat_message").map((frame) => frame.message.seq),
        Array.from({ length: MESSAGES_PER_CHAT }, (_, i) => i + 1),
      );
    }
  } finally {
    await endConnections.catch(() => {});
    for (const pair of pairs) {
      pair.customer.close();
      pair.vendor.close();
    }
    await sql.end();
  }
});
