/**
 * Read marks made while one of two instances is cut off from NATS: their `message_read` and
 * `messages_read` are lost on the bus whichever side was cut off, the reader's instance
 * (`readerOn: 1`) or the instance of the sockets they concern (`readerOn: 0`). Once it is
 * back, each message read meanwhile is sent again from the store as a `message_read`, once.
 */
import assert from "node:assert/strict";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { acked, joinChat, messageWithSeq, sendText, stillServes } from "./support/steps.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

const settings = {
  WS_RATE_PER_SECOND: "100000",
  WS_RATE_BURST: "100000",
  SHUTDOWN_TIMEOUT: "1",
};

function readOf(socket: TestSocket, message: Frame, ms?: number) {
  return socket.next(
    (frame) => frame.type === "message_read" && frame.message_id === message.id,
    `message_read of ${message.id}`,
    ms,
  );
}

async function readAcrossCut(readerOn: 0 | 1) {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, 1 - readerOn);
  await using acme = await joinChat(cluster, "acme", chat.id, readerOn);
  const sent: Frame[] = [];
  for (let n = 1; n <= 5; n++) sent.push(await sendText(alice, "acme", `m${n}`));
  await messageWithSeq(acme, 5);
  // delivered live before the cut: within the replayed window, and not to be sent again
  await acked(acme, { action: "read_message", message_id: sent[0]!.id });
  await readOf(alice, sent[0]!);

  await proxy.cut();
  await acked(acme, { action: "read_message", message_id: sent[1]!.id });
  await acked(acme, { action: "read_up_to", seq: 4 });
  // lost, not late: nothing has reached alice
  await stillServes(alice);
  assert.deepEqual(alice.pending("message_read"), []);
  assert.deepEqual(alice.pending("messages_read"), []);

  proxy.restore();
  for (const message of sent.slice(1, 4)) {
    const read = await readOf(alice, message, 15_000);
    assert.deepEqual(
      [read.chat_id, read.seq, read.reader_id],
      [chat.id, message.seq, "acme"],
    );
    assert.ok(Number.isFinite(Date.parse(read.read_at)), read.read_at);
  }

  // each once: neither the read delivered before the cut nor the replayed ones come again
  await sendText(alice, "acme", "after");
  await messageWithSeq(alice, 6);
  await messageWithSeq(acme, 6);
  assert.deepEqual(alice.pending("message_read"), []);
  assert.deepEqual(alice.pending("messages_read"), []);
  // the reader's own socket had its marks live: nothing again, as it was
  assert.deepEqual(acme.pending("message_read").map((read) => read.seq), [1, 2]);
  assert.deepEqual(acme.pending("messages_read").map((read) => read.up_to_seq), [4]);
}

Deno.test("read marks made on an instance cut off from NATS reach the other instance's sockets once it is back, once each", async () => {
  await readAcrossCut(1);
});

Deno.test("an instance cut off from NATS while messages are read elsewhere sends the reads to its sockets once it is back, once each", async () => {
  await readAcrossCut(0);
});
