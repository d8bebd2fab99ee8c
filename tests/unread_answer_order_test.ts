/**
 * Unread counts read from the store while the push that followed an older message is still on
 * its way to the socket's instance: the count is read after that push's was, and the push, come
 * late, must not take it back. Instance 1 hears NATS through a proxy the test stalls, so a
 * message and its read mark made on instance 0 reach it after the count was sent.
 */
import assert from "node:assert/strict";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import type { TestCluster } from "./support/service.ts";
import {
  acked,
  askUnread,
  holdAnswers,
  joinAllChats,
  joinChat,
  messageWithSeq,
  sendText,
} from "./support/steps.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

const settings = { WS_RATE_PER_SECOND: "100000", WS_RATE_BURST: "100000" };

/**
 * Alice sends acme a message on instance 0, which acme reads there, while what NATS sends
 * instance 1 is held back; meanwhile `count` reads acme's unread count on `late` (instance 1)
 * and it must be 0. Then the message and the mark reach `late`, with no push that counts the
 * message unread again; a message sent after is pushed as ever.
 */
async function countedWhileLate(
  late: (cluster: TestCluster, chatId: string) => Promise<TestSocket[]>,
  count: (socket: TestSocket, chatId: string) => Promise<number>,
) {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, 0);
  await using acme = await joinChat(cluster, "acme", chat.id, 0);
  const sockets = await late(cluster, chat.id);

  proxy.stall("downstream");
  const message = await sendText(alice, "acme", "hello");
  await messageWithSeq(acme, 1);
  await acked(acme, { action: "read_message", message_id: message.id });
  // read from the store after the mark: nothing unread
  for (const socket of sockets) assert.equal(await count(socket, chat.id), 0);
  proxy.restore();

  for (const socket of sockets) {
    await messageWithSeq(socket, 1);
    await socket.next((frame) => frame.type === "message_read", "the late read mark");
    assert.deepEqual(
      socket.pending("unread_messages").map((push: Frame) => push.count),
      [],
      "a push of the message counted, sent after the count",
    );
  }
  await sendText(alice, "acme", "again");
  for (const socket of sockets) {
    const push = await socket.nextOfType("unread_messages");
    assert.deepEqual(
      [push.count, push.messages.map((unread: Frame) => unread.content)],
      [1, ["again"]],
    );
  }
}

Deno.test("an unread_message answer is not taken back by the late push of a message it counted", async () => {
  await countedWhileLate(
    async (cluster, chatId) => [
      await joinChat(cluster, "acme", chatId, 1),
      await joinAllChats(cluster, "acme", 1),
    ],
    // (a chat_id on /v1/ws/chat/{id}/ is its own chat's: not needed, not in the way)
    async (socket, chatId) => (await askUnread(socket, chatId)).count,
  );
});

Deno.test("a chat list is not taken back by the late push of a message it counted", async () => {
  await countedWhileLate(
    async (cluster) => [await joinAllChats(cluster, "acme", 1)],
    async (socket, chatId) => {
      await acked(socket, { action: "list_chats" });
      const { chats } = await socket.nextOfType("chats");
      return chats.find((listed: Frame) => listed.chat_id === chatId).unread_count;
    },
  );
});

Deno.test("a chat socket's first unread count is not taken back by the late push of a message sent while its page was read", async () => {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  // the first page of a socket on instance 1 (the one opened below) is held once read
  const page = holdAnswers(cluster.instances[1]!.service.chat, "history");
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, 0);
  await using acme = await joinChat(cluster, "acme", chat.id, 0);
  const late = await cluster.openChat("acme", chat.id, 1);
  await page.read;

  proxy.stall("downstream");
  const message = await sendText(alice, "acme", "hello");
  await messageWithSeq(acme, 1);
  await acked(acme, { action: "read_message", message_id: message.id });
  // the count is read after the page, and after the mark: the message counted, and read
  page.release();
  proxy.restore();
  assert.deepEqual((await late.nextOfType("latest_chat")).messages, []);
  assert.equal((await late.nextOfType("unread_messages")).count, 0);

  await messageWithSeq(late, 1);
  await late.next((frame) => frame.type === "message_read", "the late read mark");
  assert.deepEqual(
    late.pending("unread_messages").map((push: Frame) => push.count),
    [],
    "a push of the message counted, sent after the count",
  );
});
