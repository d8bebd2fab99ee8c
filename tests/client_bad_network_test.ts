/**
 * The client library against the real server across a bad network (tests/support/tcp_proxy.ts):
 * slow, bytes one at a time, stalled, connections dropped in the middle of a frame, handshakes
 * never answered.
 */
import assert from "node:assert/strict";
import { createChatClient } from "../client/mod.ts";
import { ClientEvents, openClient, sendEach } from "./support/client_events.ts";
import { metric } from "./support/metrics.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import { within } from "./support/wait.ts";

/** A chat of cust-1 and vend-1 whose newest page is 50 messages of 2,000 characters (~120 KB). */
async function chatWithLongPage(cluster: TestCluster) {
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using vendor = await openClient(cluster, "vend-1", { chatId: chat.id });
  await vendor.client.ready();
  await sendEach(
    vendor.client,
    "cust-1",
    Array.from({ length: 50 }, (_, n) => `${n}`.repeat(2_000)),
  );
  return chat;
}

Deno.test("a slow network passing bytes one at a time delivers every send once, in order", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using network = startTcpProxy({ hostname: "127.0.0.1", port: cluster.main.service.port });
  network.delayMs = 5;
  network.oneByteWrites = true;
  await using client = createChatClient({
    url: `http://127.0.0.1:${network.port}`,
    token: await cluster.token("cust-1"),
    chatId: chat.id,
    backoff: { initialMs: 20, maxMs: 200 },
  });
  using events = new ClientEvents(client);
  await within(client.ready(), 5_000, "the first page");
  const sent = await Promise.all(
    ["one", "two", "three"].map((content) =>
      client.request({ action: "send_message", receiver_id: "vend-1", media_type: "text", content })
    ),
  );
  assert.deepEqual(sent.map((message) => [message.seq, message.content]), [
    [1, "one"],
    [2, "two"],
    [3, "three"],
  ]);
  assert.deepEqual(await events.seqs(chat.id, 3), [1, 2, 3]);
});

Deno.test("a send the network drops the connection for each time it is written is not rewritten at once, again and again: the delay grows", async () => {
  // a middlebox that cuts connections carrying a frame larger than it takes (no 1009: the TCP
  // connection just ends), or a server that dies on the frame: the socket opens, its page comes,
  // the outbox is written, and the connection goes in the middle of the send
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using network = startTcpProxy({ hostname: "127.0.0.1", port: cluster.main.service.port });
  network.dropAfterUpstreamBytes = 2_048;
  const client = createChatClient({
    url: `http://127.0.0.1:${network.port}`,
    token: await cluster.token("cust-1"),
    chatId: chat.id,
    backoff: { initialMs: 20, maxMs: 10_000, jitter: 0 },
  });
  try {
    using events = new ClientEvents(client);
    await within(client.ready(), 5_000, "the first page");
    const send = client.request({
      action: "send_message",
      receiver_id: "vend-1",
      media_type: "text",
      content: "x".repeat(4_000),
    });
    send.catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const delays = events.all("status").flatMap((status) =>
      status.state === "reconnecting" ? [status.retryInMs] : []
    );
    // 20, 40, 80, 160, 320, 640 ms: about seven connections in 1.5 s, not one every 20 ms
    assert.ok(
      network.accepted <= 10,
      `${network.accepted} connections in 1.5 s, the delays: ${delays.join(", ")}`,
    );
    assert.ok(client.status.state !== "closed");
  } finally {
    await client.close();
  }
});

Deno.test("connections dropped in the middle of a client's frame give back their places: WS_MAX_SOCKETS, the user's, the gauge", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { WS_MAX_SOCKETS: "1", WS_MAX_SOCKETS_PER_USER: "1" },
  });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using network = startTcpProxy({ hostname: "127.0.0.1", port: cluster.main.service.port });
  network.dropAfterUpstreamBytes = 2_048;
  const client = createChatClient({
    url: `http://127.0.0.1:${network.port}`,
    token: await cluster.token("cust-1"),
    chatId: chat.id,
    backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
  });
  using events = new ClientEvents(client);
  try {
    await within(client.ready(), 5_000, "the first page");
    client.request({
      action: "send_message",
      receiver_id: "vend-1",
      media_type: "text",
      content: "x".repeat(4_000),
    }).catch(() => {});
    // each connection the network drops mid-frame is followed by one the server takes in
    for (let opened = 1; opened < 6; opened++) {
      await events.next("status", (status) => status.state === "reconnecting");
      await events.next("status", (status) => status.state === "open");
    }
    const refusals = events.all("status").filter((status) =>
      status.code !== undefined && status.code !== 1006
    );
    assert.deepEqual(refusals, [], "no 4429 and no 503");
  } finally {
    await client.close();
  }
  const open = await metric(cluster, 0, 'chat_ws_open_sockets{endpoint="chat"}');
  // the last socket may still be closing
  assert.ok(open <= 1, `${open} sockets counted open`);
  await within(
    (async () => {
      while (await metric(cluster, 0, 'chat_ws_open_sockets{endpoint="chat"}') > 0) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })(),
    5_000,
    "no socket counted open",
  );
});

Deno.test("close() while the handshake is black-holed ends at once and leaves nothing open", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using network = startTcpProxy({ hostname: "127.0.0.1", port: cluster.main.service.port });
  network.blackHole = true;
  const client = createChatClient({
    url: `http://127.0.0.1:${network.port}`,
    token: await cluster.token("cust-1"),
    chatId: chat.id,
  });
  await within(network.acceptedReach(1), 2_000, "the connection");
  const started = performance.now();
  await client.close();
  assert.ok(performance.now() - started < 1_000, "close() did not wait for closeTimeoutMs");
  await within(
    (async () => {
      while (network.openConnections > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    2_000,
    "the client's end of the connection closed",
  );
});

Deno.test("close() on a stalled connection resolves after closeTimeoutMs", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using network = startTcpProxy({ hostname: "127.0.0.1", port: cluster.main.service.port });
  const client = createChatClient({
    url: `http://127.0.0.1:${network.port}`,
    token: await cluster.token("cust-1"),
    chatId: chat.id,
    closeTimeoutMs: 200,
  });
  await within(client.ready(), 5_000, "the first page");
  network.stall("both");
  const started = performance.now();
  await within(client.close(), 2_000, "close()");
  const took = performance.now() - started;
  assert.ok(took >= 190 && took < 1_000, `close() took ${Math.round(took)} ms`);
});

Deno.test("a send unanswered on a stalled connection is kept in the outbox though a frame was written just before its timeout", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using network = startTcpProxy({ hostname: "127.0.0.1", port: cluster.main.service.port });
  await using client = createChatClient({
    url: `http://127.0.0.1:${network.port}`,
    token: await cluster.token("cust-1"),
    chatId: chat.id,
    timeoutMs: 300,
    backoff: { initialMs: 20, maxMs: 200 },
  });
  using events = new ClientEvents(client);
  await within(client.ready(), 5_000, "the first page");
  const send = (content: string) =>
    client.request({ action: "send_message", receiver_id: "vend-1", media_type: "text", content });
  // the connection goes silent (no close, nothing gets through); the user goes on typing, and a
  // keystroke's typing frame is written just before the send's timeout
  network.stall("both");
  let typing: ReturnType<typeof setTimeout> | undefined;
  const typed = new Promise<boolean>((resolve) => {
    typing = setTimeout(() => {
      resolve(client.notify({ action: "typing", is_typing: true }));
      // the send's timeout, set just after this timer, is due by the time this callback ends:
      // it runs before the runtime takes the typing frame's write as done
      const until = performance.now() + 5;
      while (performance.now() < until) {
        // busy
      }
    }, 300);
  });
  const first = send("first");
  first.catch(() => {});
  try {
    assert.equal(await typed, true, "the typing frame was written on the silent socket");
    await events.next("status", (status) => status.state === "reconnecting", 2_000);
  } finally {
    clearTimeout(typing);
    network.restore();
  }
  const second = send("second");
  const stored = await Promise.allSettled([first, second]);
  assert.deepEqual(
    stored.map((result) =>
      result.status === "fulfilled" ? result.value.content : `${result.reason}`
    ),
    ["first", "second"],
  );
  assert.deepEqual(await events.seqs(chat.id, 2), [1, 2]);
});

Deno.test("a first page slower to come down a slow link than connectTimeoutMs is waited for longer at each attempt, and comes", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await chatWithLongPage(cluster);
  await using network = startTcpProxy({ hostname: "127.0.0.1", port: cluster.main.service.port });
  // the page takes a second or so to come down
  network.downstreamBytesPerSecond = 150_000;
  await using client = createChatClient({
    url: `http://127.0.0.1:${network.port}`,
    token: await cluster.token("cust-1"),
    chatId: chat.id,
    connectTimeoutMs: 300,
    backoff: { initialMs: 20, maxMs: 200 },
  });
  using events = new ClientEvents(client);
  await within(client.ready(), 10_000, "the first page");
  const page = await events.next("latest_chat");
  assert.equal(page.messages.length, 50);
  // each socket that opened and was left got twice as long as the one before
  const waited = events.all("status").flatMap((status) =>
    status.state === "reconnecting" ? [status.reason?.match(/within (\d+) ms/)?.[1]] : []
  );
  assert.deepEqual(waited, ["300", "600", "1200", "2400"].slice(0, waited.length));
});

Deno.test("a client whose network goes silent in the middle of its first page gives back its socket's places within WS_IDLE_TIMEOUT_SECONDS", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { WS_IDLE_TIMEOUT_SECONDS: "1", WS_MAX_SOCKETS_PER_USER: "1" },
  });
  const chat = await chatWithLongPage(cluster);
  await using network = startTcpProxy({ hostname: "127.0.0.1", port: cluster.main.service.port });
  network.downstreamBytesPerSecond = 100_000;
  const client = createChatClient({
    url: `http://127.0.0.1:${network.port}`,
    token: await cluster.token("cust-1"),
    chatId: chat.id,
    connectTimeoutMs: 0,
    heartbeatMs: 0,
    closeTimeoutMs: 100,
  });
  const gauge = () => metric(cluster, 0, 'chat_ws_open_sockets{endpoint="chat"}');
  try {
    await within(network.acceptedReach(1), 2_000, "the connection");
    while (await gauge() < 1) await new Promise((resolve) => setTimeout(resolve, 20));
    // the page is on its way: nothing gets through any more, and nothing is closed
    await new Promise((resolve) => setTimeout(resolve, 200));
    network.stall("both");
    const started = performance.now();
    while (await gauge() > 0) {
      assert.ok(performance.now() - started < 5_000, "the socket is still counted open");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // the user's place is free: a socket of theirs on a good network is taken in
    await using again = await openClient(cluster, "cust-1", { chatId: chat.id });
    await within(again.client.ready(), 5_000, "a new socket of the same user");
  } finally {
    await client.close();
  }
});
