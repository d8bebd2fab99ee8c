import assert from "node:assert/strict";
import { startCluster } from "./support/service.ts";
import { acked, framesBetween, joinAllChats, joinChat } from "./support/steps.ts";

Deno.test("ping is answered with nothing on either endpoint, even with a request_id", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("cust-1", "vend-1");
  await using customer = await joinChat(cluster, "cust-1", chat.id);
  await using all = await joinAllChats(cluster, "cust-1");
  for (const [socket, chatId] of [[customer, undefined], [all, chat.id]] as const) {
    const mark = socket.frames.length;
    socket.send({ action: "ping" });
    socket.send({ action: "ping", request_id: "keepalive" });
    // frames are handled in order: whatever the pings caused comes before this ack
    const barrier = await acked(socket, {
      action: "unread_message",
      ...(chatId === undefined ? {} : { chat_id: chatId }),
    });
    assert.deepEqual(framesBetween(socket, mark, barrier).map((frame) => frame.type), [
      "unread_messages",
    ]);
  }
});
