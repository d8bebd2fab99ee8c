import assert from "node:assert/strict";
import { openClient, openThroughProxy, sendEach } from "../tests/support/client_events.ts";
import { startCluster } from "../tests/support/service.ts";
import { createWatch } from "../tests/support/wait.ts";

/** The frames a client writes, on every socket it opens, and the sockets it opened. */
function recordingSockets() {
  const { changed, until } = createWatch();
  // deno-lint-ignore no-explicit-any
  const written: Array<Record<string, any>> = [];
  let opened = 0;
  return {
    written,
    get opened() {
      return opened;
    },
    webSocket(url: string): WebSocket {
      opened++;
      const socket = new WebSocket(url);
      const send = socket.send.bind(socket);
      socket.send = (data) => {
        if (typeof data === "string") written.push(JSON.parse(data));
        changed();
        send(data);
      };
      return socket;
    },
    /** Waits until `count` frames of `action` (matching `where`) were written; returns them. */
    // deno-lint-ignore no-explicit-any
    actions(action: string, count: number, where: (frame: any) => boolean = () => true) {
      return until(
        () => {
          const found = written.filter((frame) => frame.action === action && where(frame));
          return found.length >= count ? found : undefined;
        },
        `${count} ${action} frames written`,
        5_000,
      );
    },
  };
}

Deno.test("a connection gone silent while idle is left after heartbeatMs and one timeout; what was sent meanwhile arrives", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await openThroughProxy(cluster, "cust-1", {
    chatId: chat.id,
    heartbeatMs: 200,
    timeoutMs: 300,
  });
  const { proxy } = customer;
  await using vendor = await openClient(cluster, "vend-1", { chatId: chat.id });
  await Promise.all([customer.client.ready(), vendor.client.ready()]);

  // no close, nothing gets through either way: a NAT entry dropped, a network changed
  proxy.stall("both");
  const silentFrom = performance.now();
  await sendEach(vendor.client, "cust-1", ["while silent"]);

  // idle for heartbeatMs at most, then a check unanswered for timeoutMs
  const lost = await customer.events.next("status", (s) => s.state === "reconnecting", 2_000);
  const waited = performance.now() - silentFrom;
  assert.ok(waited >= 290 && waited < 1_000, `left after ${Math.round(waited)} ms`);
  assert.equal(lost.code, 1006);
  await proxy.cut();
  proxy.restore();

  assert.deepEqual(await customer.events.seqs(chat.id, 1), [1]);
  assert.equal(customer.events.all("chat_message")[0]?.message.content, "while silent");
  assert.equal(customer.client.stats.reconnects, 1);
});

Deno.test("an idle healthy connection is checked with an empty read after the last seq, and kept", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  const sockets = recordingSockets();
  await using customer = await openClient(cluster, "cust-1", {
    chatId: chat.id,
    heartbeatMs: 100,
    timeoutMs: 2_000,
    webSocket: sockets.webSocket,
  });
  await using vendor = await openClient(cluster, "vend-1", { chatId: chat.id });
  await Promise.all([customer.client.ready(), vendor.client.ready()]);
  await sendEach(vendor.client, "cust-1", ["one"]);
  assert.deepEqual(await customer.events.seqs(chat.id, 1), [1]);

  // a check goes only once the one before has been answered: four written, three answered
  await sockets.actions("load_latest_chat", 4, (frame) => frame.after_seq === 1);
  // the customer wrote nothing else (a check made before "one" came reads after seq 0)
  assert.deepEqual(
    sockets.written.filter((frame) => frame.action !== "load_latest_chat" || frame.limit !== 1),
    [],
  );
  assert.equal(customer.client.status.state, "open");
  assert.equal(sockets.opened, 1, "the socket was kept");
  assert.equal(customer.client.stats.reconnects, 0);
  // the answers are not events, and leave the order as it was
  assert.equal(customer.events.all("latest_chat").length, 1, "the first page only");
  await sendEach(vendor.client, "cust-1", ["two"]);
  assert.deepEqual(await customer.events.seqs(chat.id, 2), [1, 2]);
  assert.deepEqual(customer.events.all("error"), []);
});

Deno.test("on /v1/ws/chats/ the check reads a known chat after its last seq, or lists chats when none is known", async () => {
  await using cluster = await startCluster();
  const sockets = recordingSockets();
  await using vendor = await openClient(cluster, "vend-1", {
    heartbeatMs: 100,
    timeoutMs: 2_000,
    webSocket: sockets.webSocket,
  });
  assert.deepEqual((await vendor.events.next("chats")).chats, []);
  // no chat known: the list, which is short (it has none); a chat created comes as its messages
  const lists = await sockets.actions("list_chats", 2);
  // before the epoch: an empty page, whatever chat appears meanwhile
  const epoch = "1970-01-01T00:00:00.000Z";
  assert.deepEqual(lists.map((frame) => frame.before), [epoch, epoch]);

  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await openClient(cluster, "cust-1", { chatId: chat.id });
  await sendEach(customer.client, "vend-1", ["one"]);
  assert.deepEqual(await vendor.events.seqs(chat.id, 1), [1]);
  const reads = await sockets.actions("load_latest_chat", 2, (frame) => frame.after_seq === 1);
  assert.deepEqual(
    reads.map(({ chat_id, limit }) => ({ chat_id, limit })),
    [{ chat_id: chat.id, limit: 1 }, { chat_id: chat.id, limit: 1 }],
  );
  assert.equal(sockets.opened, 1, "the socket was kept");
  // the server's list pushed for the new chat, and none of the checks' empty pages
  const pushed = await vendor.events.next("chats");
  assert.deepEqual(pushed.chats.map((row) => row.chat_id), [chat.id]);
  assert.equal(vendor.events.all("chats").length, 2, "the first list and the pushed one only");
  await sendEach(customer.client, "vend-1", ["two"]);
  assert.deepEqual(await vendor.events.seqs(chat.id, 2), [1, 2]);
  assert.deepEqual(vendor.events.all("error"), []);
});
