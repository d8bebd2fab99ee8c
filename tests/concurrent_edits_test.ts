import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "./support/service.ts";
import { acked, joinChat, messageWithSeq, sendText } from "./support/steps.ts";

Deno.test("two edits of one message made at once on two instances leave every socket with the text the store kept", async () => {
  await using cluster = await startCluster({ instances: 2, env: { WS_RATE_BURST: "300" } });
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  // the sender on both instances, and a reader on each
  await using here = await joinChat(cluster, "cust-1", chat.id, 0);
  await using there = await joinChat(cluster, "cust-1", chat.id, 1);
  await using vendorHere = await joinChat(cluster, "vend-1", chat.id, 0);
  await using vendorThere = await joinChat(cluster, "vend-1", chat.id, 1);
  const ids: string[] = [];
  for (let round = 0; round < 100; round++) {
    const message = await sendText(here, "vend-1", `m${round}`);
    ids.push(message.id);
    await Promise.all([
      acked(here, { action: "edit_message", message_id: message.id, content: `here ${round}` }),
      acked(there, { action: "edit_message", message_id: message.id, content: `there ${round}` }),
    ]);
  }
  // a barrier from each instance: every edit published before it has come
  const ends = [await sendText(here, "vend-1", "end"), await sendText(there, "vend-1", "end")];

  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  const rows = await sql<Array<{ id: string; content: string }>>`
    select id, content from messages where chat_id = ${chat.id}`;
  await sql.end();
  const stored = new Map(rows.map((row) => [row.id, row.content]));
  const sockets = { here, there, vendorHere, vendorThere };
  for (const [name, socket] of Object.entries(sockets)) {
    for (const end of ends) await messageWithSeq(socket, end.seq);
    const shown = new Map<string, string>();
    for (const frame of socket.frames) {
      if (frame.type === "message_edited") shown.set(frame.message.id, frame.message.content);
    }
    const wrong = ids.filter((id) => shown.get(id) !== stored.get(id))
      .map((id) => `${shown.get(id)} shown, ${stored.get(id)} stored`);
    assert.deepEqual(wrong, [], `${name} shows edits the store did not keep`);
  }
});
