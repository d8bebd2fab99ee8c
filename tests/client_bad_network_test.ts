/**
 * The client library against the real server across a bad network (tests/support/bad_network.ts):
 * slow, bytes one at a time, stalled, connections dropped in the middle of a frame, handshakes
 * never answered.
 */
import assert from "node:assert/strict";
import { createChatClient } from "../client/mod.ts";
import { startBadNetwork } from "./support/bad_network.ts";
import { ClientEvents } from "./support/client_events.ts";
import { startCluster } from "./support/service.ts";
import { within } from "./support/wait.ts";

Deno.test("a slow network passing bytes one at a time delivers every send once, in order", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using network = startBadNetwork({ hostname: "127.0.0.1", port: cluster.main.service.port });
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
  await using network = startBadNetwork({ hostname: "127.0.0.1", port: cluster.main.service.port });
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

Deno.test("a send unanswered on a stalled connection is kept in the outbox though a frame was written just before its timeout", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using network = startBadNetwork({ hostname: "127.0.0.1", port: cluster.main.service.port });
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
  network.stall();
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
    network.flow();
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
