/**
 * A message committed but never published: the sender's instance lost the database's answer
 * after the commit (the send answered `unavailable`), or the bus dropped the publish. No later
 * message shows the gap, so each instance's sweep of the store (FEED_SWEEP_SECONDS) finds it.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createPostgresStore } from "../db/postgres_store.ts";
import { fromAlice } from "./support/database.ts";
import { sample } from "./support/service_process.ts";
import { startCluster } from "./support/service.ts";
import { joinAllChats, joinChat, messageWithSeq, sendText } from "./support/steps.ts";

Deno.test("a message stored but never published reaches every socket of the chat by the sweep, once, with the unread push", async () => {
  await using cluster = await startCluster({ instances: 2, env: { FEED_SWEEP_SECONDS: "0.2" } });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, 0);
  await using acme = await joinChat(cluster, "acme", chat.id, 1);
  await using acmeAll = await joinAllChats(cluster, "acme", 0);
  await sendText(alice, "acme", "published");
  for (const socket of [alice, acme, acmeAll]) await messageWithSeq(socket, 1);

  // written as the service writes it, and never handed to the bus
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await createPostgresStore(sql).insertMessage(fromAlice(chat.id, "committed, never published"));
  } finally {
    await sql.end();
  }
  for (const socket of [alice, acme, acmeAll]) {
    const { message } = await messageWithSeq(socket, 2);
    assert.equal(message.content, "committed, never published");
  }
  const push = await acme.next(
    (frame) => frame.type === "unread_messages" && frame.count === 2,
    "the unread push after the recovered message",
  );
  assert.deepEqual(push.messages.map((message: { seq: number }) => message.seq), [1, 2]);

  // once: the next message follows it, and nothing came twice
  await sendText(alice, "acme", "next");
  for (const socket of [alice, acme, acmeAll]) {
    await messageWithSeq(socket, 3);
    assert.deepEqual(socket.pending("chat_message"), []);
  }
  const recovered = await Promise.all(cluster.instances.map(async (instance) => {
    const response = await fetch(`${instance.httpUrl}/metrics`);
    return sample(await response.text(), "chat_messages_recovered_total");
  }));
  assert.deepEqual(recovered, [1, 1], "each instance delivered it to its own sockets");
});
