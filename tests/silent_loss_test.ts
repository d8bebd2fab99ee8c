/**
 * A NATS connection that silently stops taking what an instance publishes stays open, and its
 * client notices only at the third ping tick with two unanswered (up to 60 s): no reconnect, so no resync
 * request. Were the instance to crash meanwhile, no outage would be recorded either. What it
 * published in that time still reaches the other instances' sockets, by their sweeps of the
 * store (FEED_SWEEP_SECONDS): messages, edits, deletions and read marks. A stall that ends before
 * the ping timeout (a slow link, a paused server) lets the held publishes through late: what the
 * sweeps already sent is not sent again.
 */
import assert from "node:assert/strict";
import { metric } from "./support/metrics.ts";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { acked, joinChat, messageWithSeq, sendText } from "./support/steps.ts";

const AMENDMENTS = ["message_read", "message_edited", "message_deleted"];

/**
 * Two instances sweeping every 0.2 s, the second behind a proxy; alice on the first and acme on
 * the second, with three messages between them that alice had.
 */
async function chatAcrossTheProxy() {
  const setup = await natsCutToSecondInstance({
    WS_RATE_PER_SECOND: "100000",
    WS_RATE_BURST: "100000",
    SHUTDOWN_TIMEOUT: "1",
    FEED_SWEEP_SECONDS: "0.2",
  });
  const sockets: AsyncDisposable[] = [];
  const dispose = async () => {
    for (const socket of sockets.reverse()) await socket[Symbol.asyncDispose]();
    await setup[Symbol.asyncDispose]();
  };
  try {
    const { cluster } = setup;
    const chat = await cluster.main.service.chat.createChat("alice", "acme");
    const alice = await joinChat(cluster, "alice", chat.id, 0);
    sockets.push(alice);
    const acme = await joinChat(cluster, "acme", chat.id, 1);
    sockets.push(acme);
    const question = await sendText(alice, "acme", "anyone there?");
    const reply = await sendText(acme, "alice", "yes, how can we help");
    const slip = await sendText(acme, "alice", "sent to the wrong chat");
    await messageWithSeq(alice, 3);
    return { ...setup, alice, acme, question, reply, slip, [Symbol.asyncDispose]: dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}

Deno.test("what an instance publishes while NATS silently takes nothing reaches the other instance's sockets by its sweeps, before anyone notices", async () => {
  await using setup = await chatAcrossTheProxy();
  const { cluster, proxy, alice, acme, question, reply, slip } = setup;

  // the second instance's connection stays open, and what it sends is held back
  proxy.stall();
  await acked(acme, { action: "read_message", message_id: question.id });
  await acked(acme, {
    action: "edit_message",
    message_id: reply.id,
    content: "yes: how can we help?",
  });
  await acked(acme, { action: "delete_message", message_id: slip.id });
  const next = await sendText(acme, "alice", "we are here");
  await proxy.held();

  const read = await alice.nextOfType("message_read");
  assert.deepEqual([read.message_id, read.reader_id], [question.id, "acme"]);
  const edited = await alice.nextOfType("message_edited");
  assert.deepEqual([edited.message.id, edited.message.content], [
    reply.id,
    "yes: how can we help?",
  ]);
  const deleted = await alice.nextOfType("message_deleted");
  assert.deepEqual([deleted.message_id, deleted.deleted_by], [slip.id, "acme"]);
  assert.equal((await messageWithSeq(alice, 4)).message.id, next.id);

  // nobody noticed: no reconnect, so no resync request; the sweeps alone did it
  assert.equal(await metric(cluster, 1, "chat_nats_reconnects_total"), 0);
  assert.equal(await metric(cluster, 0, "chat_amendments_recovered_total"), 3);
});

Deno.test("edits, deletions and read marks a sweep sent are not sent again when their stalled publish comes through", async () => {
  await using setup = await chatAcrossTheProxy();
  const { proxy, alice, acme, question, reply, slip } = setup;

  proxy.stall();
  await acked(acme, { action: "read_message", message_id: question.id });
  await acked(acme, { action: "edit_message", message_id: reply.id, content: "edited" });
  await acked(acme, { action: "delete_message", message_id: slip.id });
  await proxy.held();
  // the first instance's sweep finds them in the store
  for (const type of AMENDMENTS) await alice.nextOfType(type);

  // the stall ends (a slow link, not a lost one): what was held goes through, then the next
  // message, in the order the second instance published them. It comes live long before a
  // sweep could deliver it (two sweep periods at least), so the held events are in by then.
  proxy.restore();
  await sendText(acme, "alice", "sorry for that");
  await messageWithSeq(alice, 4);
  // the sweep sends read marks after edits and deletions: the order is not the point
  const amendments = alice.frames.filter((frame) => AMENDMENTS.includes(frame.type));
  assert.deepEqual(amendments.map((frame) => frame.type).sort(), [...AMENDMENTS].sort());
});

Deno.test("a read up to a seq a sweep sent mark by mark is not sent again when its stalled publish comes through", async () => {
  await using setup = await chatAcrossTheProxy();
  const { proxy, alice, acme, question } = setup;
  const another = await sendText(alice, "acme", "another question");
  await messageWithSeq(acme, 4);

  proxy.stall();
  await acked(acme, { action: "read_up_to", seq: 4 });
  await proxy.held();
  // deleted since: the sweep sends no mark of it
  await acked(alice, { action: "delete_message", message_id: another.id });
  // the first instance's sweep finds the other mark in the store
  const read = await alice.nextOfType("message_read");
  assert.deepEqual([read.message_id, read.reader_id], [question.id, "acme"]);

  proxy.restore();
  await sendText(acme, "alice", "sorry for that");
  await messageWithSeq(alice, 5);
  assert.deepEqual(alice.pending("messages_read"), [], "the read told again");
  assert.deepEqual(alice.pending("message_read"), []);
});
