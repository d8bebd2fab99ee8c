/**
 * An edit committed before a read mark of the same message, whose event reaches an instance
 * after the mark's: the `message_edited` a socket gets last must not show the message unread
 * again (a client shows the message an event carries). Instance 1 reaches NATS through a proxy
 * the test stalls, so the edit made there is heard on instance 0 after the mark made there.
 */
import assert from "node:assert/strict";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { acked, joinAllChats, joinChat, messageWithSeq, sendText } from "./support/steps.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

const settings = { WS_RATE_PER_SECOND: "100000", WS_RATE_BURST: "100000" };

function edited(socket: TestSocket, messageId: string): Promise<Frame> {
  return socket.next(
    (frame) => frame.type === "message_edited" && frame.message.id === messageId,
    `message_edited of ${messageId}`,
  );
}

async function editHeardAfterRead(read: (acme: TestSocket, message: Frame) => Promise<unknown>) {
  await using setup = await natsCutToSecondInstance(settings);
  const { cluster, proxy } = setup;
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id, 1);
  await using acme = await joinChat(cluster, "acme", chat.id, 0);
  await using acmeAll = await joinAllChats(cluster, "acme", 0);
  await using aliceThere = await joinChat(cluster, "alice", chat.id, 0);
  const message = await sendText(alice, "acme", "hello");
  for (const socket of [acme, acmeAll, aliceThere]) await messageWithSeq(socket, 1);

  proxy.stall("upstream");
  await acked(alice, { action: "edit_message", message_id: message.id, content: "hello again" });
  await read(acme, message);
  const marks = [];
  for (const socket of [acme, acmeAll, aliceThere]) {
    marks.push(await socket.next((frame) => /^messages?_read$/.test(frame.type), "the read mark"));
  }
  proxy.restore();

  for (const [index, socket] of [acme, acmeAll, aliceThere].entries()) {
    const edit = await edited(socket, message.id);
    assert.equal(edit.message.content, "hello again");
    assert.equal(edit.message.is_read, true, "the edit heard after the read shows it read");
    assert.equal(edit.message.read_at, marks[index]!.read_at);
  }
  // the editor's own socket heard the edit first, as it was made
  assert.equal((await edited(alice, message.id)).message.is_read, false);
}

Deno.test("an edit heard after a read_message of its message still shows it read", async () => {
  await editHeardAfterRead((acme, message) =>
    acked(acme, { action: "read_message", message_id: message.id })
  );
});

Deno.test("an edit heard after a read_up_to past its message still shows it read", async () => {
  await editHeardAfterRead((acme) => acked(acme, { action: "read_up_to", seq: 10 }));
});
