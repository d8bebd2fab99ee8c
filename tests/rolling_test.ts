/**
 * Rolling deploys and instance failures under live traffic, as apps using the client library
 * see them: chats with their customer on one instance and their vendor on another, both
 * sending (and editing, deleting, marking read) without pause, while an instance is stopped
 * (1012) or killed (SIGKILL), NATS restarts, or a new instance joins. Every acknowledged
 * message is stored once and reaches every participant once, in order; the clients of an
 * instance that stays also get every edit, deletion and read mark once, after its message (the
 * client replays none made while it was away); unread counts agree with the store.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { type ChatClient, ConnectionLostError, createChatClient } from "../client/mod.ts";
import { ClientEvents, openClient } from "./support/client_events.ts";
import { signDevToken } from "../auth/sign.ts";
import { freshDatabase } from "./support/database.ts";
import { startNatsServer } from "./support/nats_server.ts";
import {
  createChatIn,
  serviceEnvironment,
  startServiceProcess,
} from "./support/service_process.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { seedMessages } from "./support/steps.ts";

const CHATS = 3;
/** Messages each participant sends. */
const PER_SIDE = 40;

/** Opens sockets on whichever instance `live()` names at the time of each connection. */
function routed(cluster: TestCluster, live: () => number) {
  return (url: string) => {
    const target = new URL(url);
    target.port = String(cluster.instances[live()]!.service.port);
    return new WebSocket(target);
  };
}

async function sendAll(client: ChatClient, receiver: string, tag: string, acked: string[]) {
  const pending = [];
  for (let n = 1; n <= PER_SIDE; n++) {
    pending.push(
      client.request({
        action: "send_message",
        receiver_id: receiver,
        media_type: "text",
        content: `${tag} ${n}`,
      }).then((message) => void acked.push(message.id)),
    );
    // made before the one before is answered (the client writes it once that one is), within
    // the server's rate (20 frames a second)
    await new Promise((resolve) => setTimeout(resolve, 60));
  }
  await Promise.all(pending);
}

Deno.test("a graceful stop of one of two instances under traffic loses, duplicates and reorders no message for clients of either", async () => {
  await using cluster = await startCluster({ instances: 2 });
  const chats = [];
  for (let n = 0; n < CHATS; n++) {
    chats.push(await cluster.main.service.chat.createChat(`roll-cust-${n}`, `roll-vend-${n}`));
  }
  // instance 0 is stopped; its clients come back on whatever instance is alive
  let stopped = false;
  const liveFor = (home: number) => () => stopped ? (home === 0 ? 1 : home) : home;
  const sides: Array<
    {
      user: string;
      other: string;
      chatId: string;
      home: number;
      client: ChatClient;
      events: ClientEvents;
    }
  > = [];
  const opened: AsyncDisposable[] = [];
  try {
    for (const [n, chat] of chats.entries()) {
      for (
        const [user, other, home] of [
          [`roll-cust-${n}`, `roll-vend-${n}`, n % 2],
          [`roll-vend-${n}`, `roll-cust-${n}`, (n + 1) % 2],
        ] as const
      ) {
        const side = await openClient(cluster, user, {
          chatId: chat.id,
          webSocket: routed(cluster, liveFor(home)),
        });
        opened.push(side);
        await side.events.next("latest_chat");
        sides.push({
          user,
          other,
          chatId: chat.id,
          home,
          client: side.client,
          events: side.events,
        });
      }
    }
    const acked: string[] = [];
    const sending = Promise.all(
      sides.map((side) => sendAll(side.client, side.other, side.user, acked)),
    );
    while (acked.length < (CHATS * 2 * PER_SIDE) / 3) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    stopped = true;
    await cluster.instances[0]!.service.close();
    await sending;

    const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql<
        { id: string; chat_id: string; seq: number; sender_id: string; content: string }[]
      >`select id, chat_id, seq, sender_id, content from messages order by chat_id, seq`;
      assert.equal(rows.length, CHATS * 2 * PER_SIDE, "every acknowledged message stored once");
      assert.deepEqual(new Set(rows.map((row) => row.id)), new Set(acked));
      for (const side of sides) {
        const expected = rows.filter((row) => row.chat_id === side.chatId).map((row) => row.seq);
        const seqs = await side.events.seqs(side.chatId, expected.length, 20_000);
        assert.deepEqual(seqs, expected, `${side.user} got every message once, in order`);
        // the outbox wrote what waited in the order it was made, on the next socket too
        assert.deepEqual(
          rows.filter((row) => row.sender_id === side.user).map((row) => row.content),
          Array.from({ length: PER_SIDE }, (_, index) => `${side.user} ${index + 1}`),
          `${side.user}'s messages stored in the order they were sent`,
        );
        assert.equal(side.client.stats.reconnects, side.home === 0 ? 1 : 0);
        assert.equal(side.events.all("gap").length, 0, `${side.user} saw no gap`);
      }
    } finally {
      await sql.end();
    }
  } finally {
    for (const side of opened) await side[Symbol.asyncDispose]();
  }
});

/**
 * A request other than a send whose connection was lost before its reply may or may not have
 * been done (the client does not write it again): the store says what was.
 */
async function settled(request: Promise<unknown>): Promise<void> {
  try {
    await request;
  } catch (error) {
    if (!(error instanceof ConnectionLostError)) throw error;
  }
}

/** Instances as amendedTraffic sees them: in this process or not. */
interface Deployment {
  databaseUrl: string;
  port(instance: number): number;
  token(userId: string): Promise<string>;
  createChat(customerId: string, vendorId: string): Promise<string>;
}

function inProcess(cluster: TestCluster): Deployment {
  return {
    databaseUrl: cluster.databaseUrl,
    port: (instance) => cluster.instances[instance]!.service.port,
    token: (userId) => cluster.token(userId),
    createChat: async (customerId, vendorId) =>
      (await cluster.main.service.chat.createChat(customerId, vendorId)).id,
  };
}

async function amendedTraffic(
  deployment: Deployment,
  disrupt: () => Promise<void>,
  options: { live?: (home: number) => number; steady?: (home: number) => boolean } = {},
) {
  const chats = [];
  for (let n = 0; n < CHATS; n++) {
    chats.push({ id: await deployment.createChat(`nr-cust-${n}`, `nr-vend-${n}`) });
  }
  const sides: Array<
    {
      user: string;
      other: string;
      chatId: string;
      client: ChatClient;
      events: ClientEvents;
      /** Never disconnected: has every amendment (the client replays none made while away). */
      steady: boolean;
    }
  > = [];
  const opened: AsyncDisposable[] = [];
  const misorders = new Map<string, string[]>();
  try {
    for (const [n, chat] of chats.entries()) {
      for (
        const [user, other, home] of [
          [`nr-cust-${n}`, `nr-vend-${n}`, n % 2],
          [`nr-vend-${n}`, `nr-cust-${n}`, (n + 1) % 2],
        ] as const
      ) {
        const client = createChatClient({
          url: `http://127.0.0.1:${deployment.port(home)}`,
          token: await deployment.token(user),
          chatId: chat.id,
          backoff: { initialMs: 20, maxMs: 200 },
          webSocket: (url) => {
            const target = new URL(url);
            target.port = String(deployment.port(options.live?.(home) ?? home));
            return new WebSocket(target);
          },
        });
        // every amendment comes after its message, and none twice
        let released = 0;
        const amended = new Set<string>();
        const misordered: string[] = [];
        client.on("chat_message", ({ message }) => void (released = message.seq));
        client.on("latest_chat", ({ messages }) => void (released = messages.at(-1)?.seq ?? 0));
        const amendment = (what: string, seq: number, key: string) => {
          if (seq > released) misordered.push(`${what} of #${seq} before it (#${released})`);
          if (amended.has(key)) misordered.push(`${what} of #${seq} twice`);
          amended.add(key);
        };
        client.on(
          "message_edited",
          ({ message }) => amendment("edit", message.seq, `e${message.id}${message.edited_at}`),
        );
        client.on(
          "message_deleted",
          (frame) => amendment("deletion", frame.seq, `d${frame.message_id}`),
        );
        client.on(
          "message_read",
          (frame) => amendment("read mark", frame.seq, `r${frame.message_id}`),
        );
        client.on(
          "messages_read",
          (frame) =>
            amendment(
              "marks",
              frame.up_to_seq,
              `m${frame.reader_id}${frame.up_to_seq}${frame.read_at}`,
            ),
        );
        misorders.set(user, misordered);
        const side = {
          client,
          events: new ClientEvents(client),
          async [Symbol.asyncDispose]() {
            await client.close();
          },
        };
        opened.push(side);
        await side.events.next("latest_chat");
        sides.push({
          user,
          other,
          chatId: chat.id,
          client: side.client,
          events: side.events,
          steady: options.steady?.(home) ?? true,
        });
      }
    }
    let acked = 0;
    const work = async (side: (typeof sides)[number]) => {
      for (let n = 1; n <= PER_SIDE; n++) {
        const message = await side.client.request({
          action: "send_message",
          receiver_id: side.other,
          media_type: "text",
          content: `${side.user} ${n}`,
        });
        acked++;
        if (n % 4 === 0) {
          await settled(side.client.request({
            action: "edit_message",
            message_id: message.id,
            content: `${side.user} ${n} edited`,
          }));
        }
        if (n % 7 === 0) {
          await settled(side.client.request({ action: "delete_message", message_id: message.id }));
        }
        if (n % 5 === 0) {
          const got = side.events.all("chat_message").filter((frame) =>
            frame.chat_id === side.chatId
          );
          const last = got.at(-1);
          if (last) {
            await settled(side.client.request({ action: "read_up_to", seq: last.message.seq }));
          }
        }
        // within the server's rate (20 frames a second): a request other than a send that is
        // refused rate_limited when written at once is the application's to make again
        await new Promise((resolve) => setTimeout(resolve, 80));
      }
    };
    const working = Promise.all(sides.map(work));
    while (acked < (CHATS * 2 * PER_SIDE) / 3) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await disrupt();
    await working;

    const sql = postgres(deployment.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql<
        {
          id: string;
          chat_id: string;
          seq: number;
          sender_id: string;
          is_read: boolean;
          edited: boolean;
          deleted: boolean;
        }[]
      >`select id, chat_id, seq, sender_id, is_read, edited_at is not null as edited,
          deleted_at is not null as deleted from messages order by chat_id, seq`;
      assert.equal(rows.length, CHATS * 2 * PER_SIDE);
      const counters = await sql<
        {
          id: string;
          customer_unread: number;
          vendor_unread: number;
          to_customer: number;
          to_vendor: number;
        }[]
      >`select c.id, c.customer_unread, c.vendor_unread,
          (select count(*)::int from messages m where m.chat_id = c.id and m.sender_side = 'vendor'
            and not m.is_read and m.deleted_at is null) as to_customer,
          (select count(*)::int from messages m where m.chat_id = c.id and m.sender_side = 'customer'
            and not m.is_read and m.deleted_at is null) as to_vendor
        from chats c`;
      for (const chat of counters) {
        assert.deepEqual(
          [chat.customer_unread, chat.vendor_unread],
          [chat.to_customer, chat.to_vendor],
          "the unread counters agree with the messages",
        );
      }
      for (const side of sides) {
        const inChat = rows.filter((row) => row.chat_id === side.chatId);
        const seqs = await side.events.seqs(side.chatId, inChat.length, 20_000);
        assert.deepEqual(seqs, inChat.map((row) => row.seq), `${side.user}'s messages`);
        assert.equal(side.events.all("gap").length, 0, `${side.user} saw no gap`);
        const expectedEdits = inChat.filter((row) => row.edited).map((row) => row.id).sort();
        assert.deepEqual(misorders.get(side.user), [], `${side.user}'s amendments`);
        const unread = await side.client.request({ action: "unread_message" });
        assert.equal(
          unread.count,
          inChat.filter((row) => row.sender_id === side.other && !row.is_read && !row.deleted)
            .length,
          `${side.user}'s unread count`,
        );
        assert.deepEqual(
          unread.messages.map((message) => message.seq),
          inChat.filter((row) => row.sender_id === side.other && !row.is_read && !row.deleted)
            .map((row) => row.seq).slice(-50),
          `${side.user}'s unread messages`,
        );
        if (!side.steady) continue;
        // an edit made before its message went out comes in the message itself (edited_at)
        const editsSeen = () =>
          [
            ...side.events.all("chat_message").filter((frame) => frame.message.edited_at !== null)
              .map((frame) => frame.message.id),
            ...side.events.all("message_edited").map((frame) => frame.message.id),
          ].sort();
        const deadline = Date.now() + 20_000;
        while (editsSeen().length < expectedEdits.length && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.deepEqual(editsSeen(), expectedEdits, `${side.user}'s edits, once each`);
        const expectedDeletions = inChat.filter((row) => row.deleted).map((row) => row.id).sort();
        const deletionsSeen = () =>
          [
            ...side.events.all("chat_message").filter((frame) => frame.message.deleted)
              .map((frame) => frame.message.id),
            ...side.events.all("message_deleted").map((frame) => frame.message_id),
          ].sort();
        while (deletionsSeen().length < expectedDeletions.length && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.deepEqual(deletionsSeen(), expectedDeletions, `${side.user}'s deletions, once each`);
        // the other side's marks of this side's messages reach it
        const readOfMine = inChat.filter((row) => row.sender_id === side.user && row.is_read);
        const newest = Math.max(0, ...readOfMine.map((row) => row.seq));
        while (
          Math.max(
              0,
              ...side.events.all("messages_read").filter((f) => f.reader_id === side.other)
                .map((f) => f.up_to_seq),
            ) < newest && Date.now() < deadline
        ) await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(
          Math.max(
            0,
            ...side.events.all("messages_read").filter((f) => f.reader_id === side.other).map((
              f,
            ) => f.up_to_seq),
          ),
          newest,
          `${side.user} saw ${side.other}'s read marks`,
        );
      }
    } finally {
      await sql.end();
    }
  } finally {
    for (const side of opened) await side[Symbol.asyncDispose]();
  }
}

Deno.test("a NATS restart under traffic, edits and read marks loses and duplicates no event for clients of two instances", async () => {
  await using nats = await startNatsServer();
  await using cluster = await startCluster({ instances: 0 });
  await cluster.startInstance({ NATS_URL: nats.url });
  await cluster.startInstance({ NATS_URL: nats.url });
  await amendedTraffic(inProcess(cluster), async () => {
    await nats.stop();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await nats.start();
  });
});

Deno.test("a rolling deploy under traffic (one instance stopped, a new one started) loses no message, edit or read mark for clients of the instance that stays", async () => {
  await using cluster = await startCluster({ instances: 2 });
  let replaced = false;
  await amendedTraffic(inProcess(cluster), async () => {
    await cluster.startInstance();
    replaced = true;
    await cluster.instances[0]!.service.close();
  }, { live: (home) => home === 0 && replaced ? 2 : home, steady: (home) => home === 1 });
});

Deno.test("a graceful stop under traffic loses no message for a vendor on the chats endpoint of the stopped instance", async () => {
  await using cluster = await startCluster({ instances: 2 });
  const vendor = "roll-vend-all";
  const chats = [];
  for (let n = 0; n < CHATS * 2; n++) {
    chats.push(await cluster.main.service.chat.createChat(`roll-cust-${n}`, vendor));
  }
  let stopped = false;
  const opened: AsyncDisposable[] = [];
  try {
    const vendorSide = await openClient(cluster, vendor, {
      webSocket: routed(cluster, () => stopped ? 1 : 0),
    });
    opened.push(vendorSide);
    await vendorSide.events.next("chats");
    const customers = [];
    for (const [n, chat] of chats.entries()) {
      const side = await openClient(cluster, `roll-cust-${n}`, {
        chatId: chat.id,
        webSocket: routed(cluster, () => stopped ? 1 : n % 2),
      });
      opened.push(side);
      await side.events.next("latest_chat");
      customers.push({ ...side, chatId: chat.id, user: `roll-cust-${n}` });
    }
    const acked: string[] = [];
    const sending = Promise.all([
      ...customers.map((side) => sendAll(side.client, vendor, side.user, acked)),
      ...customers.map(async (side) => {
        for (let n = 1; n <= PER_SIDE / 2; n++) {
          const message = await vendorSide.client.request({
            action: "send_message",
            chat_id: side.chatId,
            receiver_id: side.user,
            media_type: "text",
            content: `to ${side.user} ${n}`,
          });
          acked.push(message.id);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }),
    ]);
    const total = customers.length * (PER_SIDE + PER_SIDE / 2);
    while (acked.length < total / 3) await new Promise((resolve) => setTimeout(resolve, 10));
    stopped = true;
    await cluster.instances[0]!.service.close();
    await sending;

    const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql<{ id: string; chat_id: string; seq: number }[]>`
        select id, chat_id, seq from messages order by chat_id, seq`;
      assert.equal(rows.length, total, "every acknowledged message stored once");
      assert.deepEqual(new Set(rows.map((row) => row.id)), new Set(acked));
      for (const side of customers) {
        const expected = rows.filter((row) => row.chat_id === side.chatId).map((row) => row.seq);
        assert.deepEqual(await side.events.seqs(side.chatId, expected.length, 20_000), expected);
        assert.deepEqual(
          await vendorSide.events.seqs(side.chatId, expected.length, 20_000),
          expected,
          `the vendor got every message of ${side.user}'s chat once, in order`,
        );
      }
      assert.equal(vendorSide.events.all("gap").length, 0);
    } finally {
      await sql.end();
    }
  } finally {
    for (const side of opened) await side[Symbol.asyncDispose]();
  }
});

Deno.test("a SIGKILL of one of two instances under traffic, edits and read marks loses no message, edit or read mark for clients of the survivor", async () => {
  await using database = await freshDatabase();
  await using nats = await startNatsServer();
  const env: Record<string, string> = {
    ...serviceEnvironment({ databaseUrl: database.url, natsUrl: nats.url }),
    GRPC_ENABLED: "0",
    LOG_LEVEL: "info",
    FEED_SWEEP_SECONDS: "1",
  };
  await using stack = new AsyncDisposableStack();
  const started = await Promise.allSettled([startServiceProcess(env), startServiceProcess(env)]);
  for (const result of started) {
    if (result.status === "fulfilled") stack.use(result.value);
  }
  const services = started.map((result) => {
    if (result.status === "rejected") throw result.reason;
    return result.value;
  });
  let killed = false;
  await amendedTraffic({
    databaseUrl: database.url,
    port: (instance) => services[instance]!.port,
    token: (userId) => signDevToken(env.JWT_SECRET!, userId),
    createChat: (customerId, vendorId) => createChatIn(database.url, customerId, vendorId),
  }, async () => {
    killed = true;
    services[0]!.kill("SIGKILL");
    await services[0]!.status;
  }, { live: (home) => killed ? 1 : home, steady: (home) => home === 1 });
});

Deno.test("clients away for more than a page of messages during a deploy get every message once, in order, on both endpoints", async () => {
  await using cluster = await startCluster({ instances: 2 });
  const chat = await cluster.main.service.chat.createChat("away-cust", "away-vend");
  const other = await cluster.main.service.chat.createChat("away-cust-2", "away-vend");
  await seedMessages(cluster, chat.id, { from: "away-cust", to: "away-vend", count: 3 });
  let back = false;
  const live = () => back ? 1 : 0;
  await using customer = await openClient(cluster, "away-cust", {
    chatId: chat.id,
    webSocket: routed(cluster, live),
  });
  await using vendor = await openClient(cluster, "away-vend", { webSocket: routed(cluster, live) });
  await customer.events.next("latest_chat");
  await vendor.events.next("chats");
  await cluster.instances[0]!.service.close();
  await customer.events.next("status", (status) => status.state === "reconnecting");
  await vendor.events.next("status", (status) => status.state === "reconnecting");
  const service = cluster.instances[1]!.service.chat;
  for (const [from, to] of [["away-vend", "away-cust"], ["away-cust", "away-vend"]]) {
    const { membership } = await service.joinChat(from!, chat.id);
    for (let n = 1; n <= 130; n++) {
      await service.sendMessage({ user_id: from!, membership }, {
        receiver_id: to!,
        media_type: "text",
        content: `${from} ${n}`,
        media: null,
        client_id: null,
      });
    }
  }
  const { membership } = await service.joinChat("away-cust-2", other.id);
  await service.sendMessage({ user_id: "away-cust-2", membership }, {
    receiver_id: "away-vend",
    media_type: "text",
    content: "elsewhere",
    media: null,
    client_id: null,
  });
  back = true;
  const expected = Array.from({ length: 260 }, (_, index) => index + 4);
  assert.deepEqual(await customer.events.seqs(chat.id, 260, 20_000), expected);
  assert.deepEqual(await vendor.events.seqs(chat.id, 260, 20_000), expected);
  assert.deepEqual(await vendor.events.seqs(other.id, 1, 20_000), [1]);
  assert.deepEqual(customer.events.all("gap"), []);
  assert.deepEqual(vendor.events.all("gap"), []);
  assert.equal(customer.client.stats.reconnects, 1);
  assert.equal(vendor.client.stats.reconnects, 1);
});

Deno.test("an instance stopped while NATS is down, under traffic: the instance that stays has every message, edit and read mark once NATS and a new instance are up", async () => {
  await using nats = await startNatsServer();
  await using cluster = await startCluster({
    instances: 0,
    env: { NATS_URL: nats.url, SHUTDOWN_TIMEOUT: "3", FEED_SWEEP_SECONDS: "1" },
  });
  await cluster.startInstance();
  await cluster.startInstance();
  let stopped = false;
  await amendedTraffic(inProcess(cluster), async () => {
    await nats.stop();
    await new Promise((resolve) => setTimeout(resolve, 300));
    stopped = true;
    await cluster.instances[0]!.service.close();
    await nats.start();
    await cluster.startInstance();
  }, { live: (home) => stopped ? 1 : home, steady: (home) => home === 1 });
});
