/**
 * A killed instance loses no acknowledged message: two `deno task start` processes share the
 * database and a private NATS; chats have their customer on one instance and their vendor on
 * the other, both sending; one instance is SIGKILLed mid-load. Its clients reconnect to the
 * survivor and send again what was not acknowledged, with the same client_id, as the contract
 * tells them to.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { signDevToken } from "../auth/sign.ts";
import { freshDatabase } from "./support/database.ts";
import { report } from "./support/figures.ts";
import { startNatsServer } from "./support/nats_server.ts";
import {
  createChatIn,
  serviceEnvironment,
  type ServiceProcess,
  startServiceProcess,
} from "./support/service_process.ts";
import { within } from "./support/wait.ts";
import { type Frame, TestSocket } from "./support/ws_client.ts";

const CHATS = 6;
/** Acknowledged messages before the kill. */
const BEFORE_KILL = 150;
/** Acknowledged messages on the survivor after the kill. */
const AFTER_KILL = 60;

interface Sender {
  userId: string;
  receiverId: string;
  chatId: string;
  socket: TestSocket;
  /** client_id -> content of every message sent and not yet answered. */
  unanswered: Map<string, string>;
}

interface Acked {
  id: string;
  chatId: string;
  clientId: string;
}

/** Sends with `inFlight` requests outstanding until `stop()` or the socket closes. */
async function sendUntil(
  sender: Sender,
  options: { inFlight: number; stop: () => boolean; onAck: (acked: Acked) => void },
): Promise<void> {
  let counter = 0;
  const loop = async () => {
    while (!options.stop()) {
      const clientId = `${sender.userId}-${++counter}-${crypto.randomUUID().slice(0, 8)}`;
      const content = `${sender.userId} ${counter}`;
      sender.unanswered.set(clientId, content);
      let reply: Frame;
      try {
        reply = await sender.socket.request({
          action: "send_message",
          receiver_id: sender.receiverId,
          media_type: "text",
          content,
          client_id: clientId,
        });
      } catch (error) {
        // the instance died under the socket: what was not acknowledged is sent again later
        if (/socket closed|timed out/.test(String(error))) return;
        throw error;
      }
      assert.equal(reply.type, "ack", JSON.stringify(reply));
      sender.unanswered.delete(clientId);
      options.onAck({ id: reply.message.id, chatId: reply.message.chat_id, clientId });
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, loop));
}

/** How many of these client_ids have a stored message. */
async function countStored(databaseUrl: string, clientIds: string[]): Promise<number> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<[{ count: number }]>`
      select count(*)::int as count from messages where client_id = any(${clientIds})`;
    return row!.count;
  } finally {
    await sql.end();
  }
}

/** The service's own pid (the child of `deno task`), from its "listening" line. */
function servicePid(service: ServiceProcess): number {
  const pid = service.logs().find((line) => line.message === "listening")?.pid;
  assert.equal(typeof pid, "number");
  return pid;
}

Deno.test("after a SIGKILL of one of two instances under load, every acknowledged message is stored exactly once and the survivor's clients have every message in order", async () => {
  await using database = await freshDatabase();
  await using nats = await startNatsServer();
  const env: Record<string, string> = {
    ...serviceEnvironment({ databaseUrl: database.url, natsUrl: nats.url }),
    GRPC_ENABLED: "0",
    LOG_LEVEL: "info",
    WS_RATE_PER_SECOND: "100000",
    WS_RATE_BURST: "100000",
  };
  const started = await Promise.allSettled([startServiceProcess(env), startServiceProcess(env)]);
  await using stack = new AsyncDisposableStack();
  for (const result of started) {
    if (result.status === "fulfilled") stack.use(result.value);
  }
  const [doomed, survivor] = started.map((result) => {
    if (result.status === "rejected") throw result.reason;
    return result.value;
  }) as [ServiceProcess, ServiceProcess];
  const token = (userId: string) => signDevToken(env.JWT_SECRET!, userId);
  const sockets: TestSocket[] = [];
  const open = async (service: ServiceProcess, userId: string, chatId: string) => {
    const socket = await TestSocket.open(`${service.wsUrl}/v1/ws/chat/${chatId}/`, {
      token: await token(userId),
    });
    sockets.push(socket);
    await socket.nextOfType("latest_chat");
    await socket.nextOfType("unread_messages");
    return socket;
  };

  try {
    const customers: Sender[] = [];
    const vendors: Sender[] = [];
    for (let index = 0; index < CHATS; index++) {
      const [customerId, vendorId] = [`customer-${index}`, `vendor-${index}`];
      const chatId = await createChatIn(database.url, customerId, vendorId);
      customers.push({
        userId: customerId,
        receiverId: vendorId,
        chatId,
        socket: await open(doomed, customerId, chatId),
        unanswered: new Map(),
      });
      vendors.push({
        userId: vendorId,
        receiverId: customerId,
        chatId,
        socket: await open(survivor, vendorId, chatId),
        unanswered: new Map(),
      });
    }

    const acked: Acked[] = [];
    let killed = false;
    let ackedAfterKill = 0;
    const { promise: loaded, resolve: enoughBefore } = Promise.withResolvers<void>();
    const { promise: survived, resolve: enoughAfter } = Promise.withResolvers<void>();
    const onAck = (message: Acked) => {
      acked.push(message);
      if (acked.length >= BEFORE_KILL) enoughBefore();
      if (killed && ++ackedAfterKill >= AFTER_KILL) enoughAfter();
    };
    const stop = () => killed && ackedAfterKill >= AFTER_KILL;
    const customerLoad = customers.map((sender) => sendUntil(sender, { inFlight: 2, stop, onAck }));
    const vendorLoad = vendors.map((sender) => sendUntil(sender, { inFlight: 2, stop, onAck }));
    await within(loaded, 20_000, `${BEFORE_KILL} acknowledged messages`);

    Deno.kill(servicePid(doomed), "SIGKILL");
    killed = true;
    assert.notEqual((await within(doomed.status, 10_000, "the killed instance to end")).code, 0);
    await within(Promise.all(customerLoad), 10_000, "the killed instance's senders to stop");

    const storedUnanswered = await countStored(
      database.url,
      customers.flatMap((customer) => [...customer.unanswered.keys()]),
    );

    // The killed instance's clients reconnect to the survivor and send again what was not
    // acknowledged, with the same client_id; then they carry on.
    const resent: Acked[] = [];
    for (const customer of customers) {
      customer.socket = await open(survivor, customer.userId, customer.chatId);
      for (const [clientId, content] of customer.unanswered) {
        const reply = await customer.socket.request({
          action: "send_message",
          receiver_id: customer.receiverId,
          media_type: "text",
          content,
          client_id: clientId,
        });
        assert.equal(reply.type, "ack", JSON.stringify(reply));
        resent.push({ id: reply.message.id, chatId: customer.chatId, clientId });
      }
      customer.unanswered.clear();
    }
    report(
      `SIGKILL after ${acked.length - ackedAfterKill} acknowledged messages: ${resent.length} ` +
        `unacknowledged ones sent again on the survivor, ${storedUnanswered} of which the ` +
        `killed instance had stored`,
    );
    const resumed = customers.map((sender) => sendUntil(sender, { inFlight: 1, stop, onAck }));
    await within(survived, 20_000, `${AFTER_KILL} acknowledged messages after the kill`);
    await within(Promise.all([...vendorLoad, ...resumed]), 10_000, "the load to stop");
    for (const sender of [...vendors, ...customers]) {
      assert.deepEqual([...sender.unanswered.keys()], [], "the survivor answered everything");
    }

    const sql = postgres(database.url, { max: 1, onnotice: () => {} });
    let chats: Array<{ id: string; last_seq: number }>;
    try {
      const everything = [...acked, ...resent];
      const ids = [...new Set(everything.map((message) => message.id))];
      const [stored] = await sql<[{ count: number }]>`
        select count(*)::int as count from messages where id = any(${ids}::uuid[])`;
      assert.equal(stored!.count, ids.length, "an acknowledged message is missing");
      const repeated = await sql`
        select chat_id, sender_id, client_id, count(*)::int from messages
        group by chat_id, sender_id, client_id having count(*) > 1`;
      assert.deepEqual([...repeated], [], "a client_id was stored twice");
      const [withoutClientId] = await sql<[{ count: number }]>`
        select count(*)::int as count from messages where client_id is null`;
      assert.equal(withoutClientId!.count, 0);
      // every client_id a client ever sent is stored: none was lost with the instance
      const [total] = await sql<[{ count: number }]>`select count(*)::int as count from messages`;
      const sentClientIds = new Set(everything.map((message) => message.clientId));
      assert.equal(total!.count, sentClientIds.size);
      chats = [
        ...await sql<Array<{ id: string; last_seq: number }>>`
        select c.id, c.last_seq from chats c`,
      ];
      for (const chat of chats) {
        const [seqs] = await sql<[{ count: number; max: number }]>`
          select count(*)::int as count, coalesce(max(seq), 0)::int as max
          from messages where chat_id = ${chat.id}`;
        assert.deepEqual(seqs, { count: chat.last_seq, max: chat.last_seq }, "a seq gap");
      }
    } finally {
      await sql.end();
    }

    // The survivor's vendor sockets were open throughout: each has every message of its chat,
    // in seq order, once; and after_seq from 0 (what a client fills a gap with) agrees.
    for (const vendor of vendors) {
      const lastSeq = chats.find((chat) => chat.id === vendor.chatId)!.last_seq;
      await vendor.socket.next(
        (frame) => frame.type === "chat_message" && frame.message.seq === lastSeq,
        `seq ${lastSeq} on ${vendor.userId}'s socket`,
      );
      const seen = vendor.socket.frames
        .filter((frame) => frame.type === "chat_message")
        .map((frame) => frame.message.seq);
      assert.deepEqual(seen, Array.from({ length: lastSeq }, (_, index) => index + 1));
      const history: number[] = [];
      let hasMore = true;
      while (hasMore) {
        const reply = await vendor.socket.request({
          action: "load_latest_chat",
          after_seq: history.at(-1) ?? 0,
          limit: 100,
        });
        assert.equal(reply.type, "ack");
        const page = vendor.socket.pending("latest_chat").at(-1)!;
        await vendor.socket.next((frame) => frame === page, "the page");
        history.push(...page.messages.map((message: Frame) => message.seq));
        hasMore = page.has_more;
      }
      assert.deepEqual(history, seen);
    }
  } finally {
    for (const socket of sockets) socket.close();
    await Promise.all(sockets.map((socket) => socket.closed));
  }
});
