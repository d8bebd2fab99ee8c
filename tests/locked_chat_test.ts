/**
 * A chat row locked from outside the service (an operator's `select ... for update`, a long
 * admin transaction, a migration) costs only that chat's sends, not those of the other chats
 * the message writer writes in the same lane.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { writerLaneOf } from "../db/writer_lanes.ts";
import { waitingForLock } from "./support/database.ts";
import { startCluster } from "./support/service.ts";
import { joinChat, sendText } from "./support/steps.ts";
import { within } from "./support/wait.ts";

Deno.test("a chat row locked from outside fails that chat's sends unavailable, while another chat of its writer lane is answered at once", async () => {
  await using cluster = await startCluster({ nats: false });
  const chats = cluster.main.service.chat;
  const locked = await chats.createChat("cust-locked", "vend-1");
  let other: { id: string; user_id: string } | undefined;
  for (let index = 0; !other && index < 40; index++) {
    const candidate = await chats.createChat(`cust-${index}`, "vend-1");
    if (writerLaneOf(candidate.id) === writerLaneOf(locked.id)) other = candidate;
  }
  assert.ok(other, "no chat in the locked chat's lane");
  await using lockedSender = await joinChat(cluster, "cust-locked", locked.id);
  await using otherSender = await joinChat(cluster, other.user_id, other.id);

  const operator = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
  try {
    const transaction = await operator.reserve();
    try {
      await transaction`begin`;
      await transaction`select 1 from chats where id = ${locked.id} for update`;
      const send = { action: "send_message", receiver_id: "vend-1", media_type: "text" };
      const lockedReply = lockedSender.request(
        { ...send, content: "while locked", client_id: "locked-1" },
        10_000,
      );
      await within(waitingForLock(operator), 5_000, "the writer to wait for the chat's row");
      const sentAt = performance.now();
      const otherReply = await otherSender.request(
        { ...send, content: "unrelated", client_id: "other-1" },
        10_000,
      );
      const otherTook = performance.now() - sentAt;
      assert.equal(otherReply.type, "ack", `the other chat's send: ${JSON.stringify(otherReply)}`);
      assert.equal(otherReply.message.seq, 1);
      assert.ok(otherTook < 2_000, `the other chat's send waited ${Math.round(otherTook)} ms`);
      const refused = await lockedReply;
      assert.equal(refused.type, "error", `the locked chat's send: ${JSON.stringify(refused)}`);
      assert.equal(refused.code, "unavailable");
      const [{ count }] = await operator<[{ count: number }]>`
        select count(*)::int as count from messages where chat_id = ${locked.id}`;
      assert.equal(count, 0, "a send answered unavailable was stored");
    } finally {
      await transaction`rollback`;
      transaction.release();
    }
    // once the lock is gone, the sender's retry with the same client_id stores it once
    const retried = await sendText(lockedSender, "vend-1", "while locked", {
      client_id: "locked-1",
    });
    assert.equal(retried.seq, 1);
    const [{ count }] = await operator<[{ count: number }]>`
      select count(*)::int as count from messages where chat_id = ${locked.id}`;
    assert.equal(count, 1);
  } finally {
    await operator.end();
  }
});
