import assert from "node:assert/strict";
import postgres from "postgres";
import { signDevToken } from "../auth/sign.ts";
import { createPostgresStore } from "../db/postgres_store.ts";
import { freshDatabase } from "./support/database.ts";
import { startNatsServer } from "./support/nats_server.ts";
import {
  createChatIn,
  ownShutdownMs,
  serviceEnvironment,
  type ServiceProcess,
  startServiceProcess,
} from "./support/service_process.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import { within } from "./support/wait.ts";
import { TestSocket } from "./support/ws_client.ts";

const SHUTDOWN_TIMEOUT = 5;

interface Acked {
  id: string;
  chatId: string;
}

/**
 * Sends messages on `socket` with `inFlight` requests outstanding, recording each ack, until
 * the socket closes (an unanswered request then rejects) or `stopped()`: the requests out then
 * are still answered or dropped by the server. (Deno's client answers a close frame by itself;
 * a frame the test sends after that makes its write fail, and the socket reports close code 0
 * although the server closed it with 1012.)
 */
async function sendUntilClosed(
  socket: TestSocket,
  options: {
    receiverId: string;
    inFlight: number;
    acked: Acked[];
    onAck: () => void;
    stopped: () => boolean;
  },
): Promise<void> {
  let counter = 0;
  const loop = async () => {
    while (!options.stopped()) {
      const clientId = crypto.randomUUID();
      try {
        const reply = await socket.request({
          action: "send_message",
          receiver_id: options.receiverId,
          media_type: "text",
          content: `load ${++counter}`,
          client_id: clientId,
        });
        if (reply.type !== "ack") throw new Error(`refused: ${JSON.stringify(reply)}`);
        options.acked.push({ id: reply.message.id, chatId: reply.message.chat_id });
        options.onAck();
      } catch (error) {
        // the server closed the socket: what was not acknowledged may be lost, by contract
        if (/socket closed|readyState|timed out/i.test(String(error))) return;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, loop));
}

/** Opens `count` chats with a customer and a vendor socket on each, and a chats socket per vendor. */
async function openLoad(
  service: ServiceProcess,
  databaseUrl: string,
  secret: string,
  count: number,
) {
  const chats: Array<{
    customerId: string;
    vendorId: string;
    customer: TestSocket;
    vendor: TestSocket;
  }> = [];
  const sockets: TestSocket[] = [];
  for (let index = 0; index < count; index++) {
    const customerId = `customer-${index}`;
    const vendorId = `vendor-${index}`;
    const chatId = await createChatIn(databaseUrl, customerId, vendorId);
    const open = async (userId: string, path: string) => {
      const socket = await TestSocket.open(`${service.wsUrl}${path}`, {
        token: await signDevToken(secret, userId),
      });
      sockets.push(socket);
      return socket;
    };
    const customer = await open(customerId, `/v1/ws/chat/${chatId}/`);
    const vendor = await open(vendorId, `/v1/ws/chat/${chatId}/`);
    const everything = await open(vendorId, "/v1/ws/chats/");
    await customer.nextOfType("unread_messages");
    await vendor.nextOfType("unread_messages");
    await everything.nextOfType("chats");
    chats.push({ customerId, vendorId, customer, vendor });
  }
  return { chats, sockets };
}

async function stopUnderLoad(signal: Deno.Signal, chatCount: number, target: number) {
  await using database = await freshDatabase();
  await using nats = await startNatsServer();
  const env: Record<string, string> = {
    ...serviceEnvironment({ databaseUrl: database.url, natsUrl: nats.url }),
    SHUTDOWN_TIMEOUT: String(SHUTDOWN_TIMEOUT),
    // the load is the point here, not the per-socket rate limit
    WS_RATE_PER_SECOND: "100000",
    WS_RATE_BURST: "100000",
  };
  await using service = await startServiceProcess(env);
  const { chats, sockets } = await openLoad(service, database.url, env.JWT_SECRET!, chatCount);
  try {
    const acked: Acked[] = [];
    const { promise: loaded, resolve: enough } = Promise.withResolvers<void>();
    const onAck = () => {
      if (acked.length >= target) enough();
    };
    let signalled = false;
    const stopped = () => signalled;
    const senders = chats.flatMap(({ customerId, vendorId, customer, vendor }) => [
      sendUntilClosed(customer, { receiverId: vendorId, inFlight: 3, acked, onAck, stopped }),
      sendUntilClosed(vendor, { receiverId: customerId, inFlight: 3, acked, onAck, stopped }),
    ]);
    await within(loaded, 20_000, `${target} acknowledged messages`);

    // the frames out now are the load the shutdown meets; none is sent after the signal
    signalled = true;
    const signalledAt = performance.now();
    service.kill(signal);
    const status = await within(service.status, (SHUTDOWN_TIMEOUT + 3) * 1000, "the exit");
    const elapsedMs = performance.now() - signalledAt;
    assert.equal(status.code, 0);
    assert.ok(
      elapsedMs < SHUTDOWN_TIMEOUT * 1000 + 1_000,
      `exited after ${Math.round(elapsedMs)} ms`,
    );

    const closes = await within(
      Promise.all(sockets.map((socket) => socket.closed)),
      2_000,
      "every socket to close",
    );
    assert.deepEqual(new Set(closes.map((close) => close.code)), new Set([1012]));
    await within(Promise.all(senders), 5_000, "the senders to stop");

    const sql = postgres(database.url, { max: 1, onnotice: () => {} });
    try {
      const ids = acked.map((message) => message.id);
      const [stored] = await sql<[{ count: number }]>`
        select count(*)::int as count from messages where id = any(${ids}::uuid[])`;
      assert.equal(stored!.count, ids.length, "an acknowledged message is missing");
      // nothing half-written: each chat's seq runs 1..last_seq without a gap
      const perChat = await sql<Array<{ count: number; max_seq: number; last_seq: number }>>`
        select count(m.id)::int as count, coalesce(max(m.seq), 0)::int as max_seq, c.last_seq
        from chats c left join messages m on m.chat_id = c.id
        group by c.id, c.last_seq`;
      for (const chat of perChat) {
        assert.equal(chat.count, chat.last_seq, JSON.stringify(chat));
        assert.equal(chat.max_seq, chat.last_seq, JSON.stringify(chat));
      }
    } finally {
      await sql.end();
    }
    assert.ok(service.logs().some((line) => line.message === "stopped"));
  } finally {
    for (const socket of sockets) socket.close();
    await Promise.all(sockets.map((socket) => socket.closed));
  }
}

Deno.test("SIGTERM under load closes every socket with 1012, exits 0 in time, and keeps every acknowledged message", async () => {
  await stopUnderLoad("SIGTERM", 6, 150);
});

Deno.test("SIGINT stops the service the same way", async () => {
  await stopUnderLoad("SIGINT", 1, 10);
});

Deno.test("a write that hangs past SHUTDOWN_TIMEOUT is cut: sockets get 1012, the process exits 0 in time, nothing is half-written or written twice", async () => {
  await using database = await freshDatabase();
  await using proxy = startTcpProxy(database.url);
  const timeoutSeconds = 2;
  const env: Record<string, string> = {
    ...serviceEnvironment({ databaseUrl: proxy.url }),
    SHUTDOWN_TIMEOUT: String(timeoutSeconds),
    // no gRPC health poller: the only query the stalled database sees is the test's write
    GRPC_ENABLED: "0",
  };
  await using service = await startServiceProcess(env);
  const chatId = await createChatIn(database.url, "alice", "acme");
  await using alice = await TestSocket.open(`${service.wsUrl}/v1/ws/chat/${chatId}/`, {
    token: await signDevToken(env.JWT_SECRET!, "alice"),
  });
  await alice.nextOfType("unread_messages");
  const first = await alice.request({
    action: "send_message",
    receiver_id: "acme",
    media_type: "text",
    content: "stored",
  });
  assert.equal(first.type, "ack");

  proxy.stall();
  const hanging = {
    action: "send_message",
    receiver_id: "acme",
    media_type: "text",
    content: "hangs",
    client_id: "h-1",
  } as const;
  alice.send(hanging);
  await within(proxy.held(), 5_000, "the write to reach the stalled database");
  const signalledAt = performance.now();
  service.kill("SIGTERM");
  const status = await within(service.status, (timeoutSeconds + 4) * 1000, "the exit");
  const elapsedMs = performance.now() - signalledAt;
  assert.equal(status.code, 0);
  // it waits for the write until a second before the timeout, then cuts and closes in time
  assert.ok(elapsedMs >= (timeoutSeconds - 1) * 1000, `gave up early: ${Math.round(elapsedMs)} ms`);
  assert.ok(elapsedMs < timeoutSeconds * 1000 + 300, `exited after ${Math.round(elapsedMs)} ms`);
  // the pools, one of them stalled, end within the timeout too, not each with all that is left
  const ownMs = ownShutdownMs(service);
  assert.ok(ownMs < timeoutSeconds * 1000, `its own shutdown took ${ownMs} ms`);
  assert.equal((await within(alice.closed, 1_000, "the socket to close")).code, 1012);
  assert.ok(service.logs().some((line) => /did not finish before the deadline/.test(line.message)));

  // The batch's statement was on its way when the process was cut; restored, the network
  // delivers it and the database may store it, unannounced and unacknowledged, as with any
  // answer lost with its connection. The client's retry with its client_id settles it: stored
  // once, whichever of the two reaches the database first.
  proxy.restore();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  try {
    const retried = await createPostgresStore(sql).insertMessage({
      chat_id: chatId,
      sender_id: "alice",
      sender_side: "customer",
      receiver_id: hanging.receiver_id,
      media_type: hanging.media_type,
      content: hanging.content,
      media_id: null,
      client_id: hanging.client_id,
    });
    assert.equal(retried.message.seq, 2);
    // long enough for the delivered statement to have run, if it came second
    await new Promise((resolve) => setTimeout(resolve, 300));
    const rows = await sql<Array<{ seq: number; content: string }>>`
      select seq, content from messages where chat_id = ${chatId} order by seq`;
    assert.deepEqual(
      rows.map((row) => [row.seq, row.content]),
      [[1, "stored"], [2, "hangs"]],
      "each message stored once, seqs without a gap",
    );
    const [chat] = await sql<
      [{ last_seq: number; vendor_unread: number }]
    >`select last_seq, vendor_unread from chats where id = ${chatId}`;
    assert.deepEqual(chat, { last_seq: 2, vendor_unread: 2 }, "the chat's counters agree");
  } finally {
    await sql.end();
  }
});
