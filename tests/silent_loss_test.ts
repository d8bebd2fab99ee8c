/**
 * A NATS connection that silently stops taking what an instance publishes stays open, and its
 * client notices only after three unanswered pings (up to 60 s): no reconnect, so no resync
 * request. Were the instance to crash meanwhile, no outage would be recorded either. What it
 * published in that time still reaches the other instances' sockets, by their sweeps of the
 * store (FEED_SWEEP_SECONDS): messages, edits, deletions and read marks.
 */
import assert from "node:assert/strict";
import { metric } from "./support/metrics.ts";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { acked, joinChat, messageWithSeq, sendText } from "./support/steps.ts";

Deno.test("what an instance publishes while NATS silently takes nothing reaches the other instance's sockets by its sweeps, before anyone notices", async () => {
  await using setup = await natsCutToSecondInstance({
    WS_RATE_PER_SECOND: "100000",
    WS_RATE_BURST: "100000",
    SHUTDOWN_TIMEOUT: "1",
    FEED_SWEEP_SECONDS: "0.2",
  });
  const { cluster, proxy } = setup;
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, 0);
  await using acme = await joinChat(cluster, "acme", chat.id, 1);
  const question = await sendText(alice, "acme", "anyone there?");
  const reply = await sendText(acme, "alice", "yes, how can we help");
  const slip = await sendText(acme, "alice", "sent to the wrong chat");
  await messageWithSeq(alice, 3);

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
