import assert from "node:assert/strict";
import { Participant } from "./participant.ts";

/**
 * A server that answers the handshake as the contract has it (`latest_chat`, then the unread
 * push), then at the participant's request plays `seqs`, each with its unread push.
 */
function playingServer(seqs: number[]) {
  const unread = JSON.stringify({ type: "unread_messages", chat_id: "c", count: 0, messages: [] });
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "latest_chat", messages: [] }));
      socket.send(unread);
    };
    socket.onmessage = (event) => {
      const { request_id } = JSON.parse(event.data);
      for (const seq of seqs) {
        const message = { id: `id${seq}`, seq, sender_id: "vendor", client_id: `m${seq}` };
        socket.send(JSON.stringify({ type: "chat_message", message }));
        socket.send(unread);
      }
      socket.send(JSON.stringify({ type: "ack", request_id }));
    };
    return response;
  });
}

Deno.test("a participant counts a message that comes behind a later one as out of order, not as a duplicate", async () => {
  await using server = playingServer([1, 3, 2, 2]);
  const participant = await Participant.open(
    `ws://127.0.0.1:${server.addr.port}`,
    crypto.randomUUID(),
    "token",
  );
  const received: number[] = [];
  participant.onMessage((message) => received.push(message.seq));
  await participant.request({ action: "play", request_id: "played" });
  await participant.close();
  // 3 came after a gap and 2 behind 3: out of order both, yet delivered; only the second 2 was
  // seen before
  assert.deepEqual(received, [1, 3, 2]);
  assert.equal(participant.stats.outOfOrder, 2);
  assert.equal(participant.stats.duplicates, 1);
});

Deno.test("a participant counts the unread pushes that follow messages, not the one that opens the socket", async () => {
  await using server = playingServer([1, 2, 3]);
  const participant = await Participant.open(
    `ws://127.0.0.1:${server.addr.port}`,
    crypto.randomUUID(),
    "token",
  );
  await participant.request({ action: "play", request_id: "played" });
  await participant.close();
  // one per message, as the bench compares them with the messages delivered
  assert.equal(participant.stats.unreadPushes, 3);
});

Deno.test("a participant whose socket the service closed rejects a request at once instead of leaving it unanswered", async () => {
  const { promise: closed, resolve: serverClosed } = Promise.withResolvers<void>();
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "latest_chat", messages: [] }));
      // as the service closes a socket that fell too far behind
      socket.close(4429, "too slow");
    };
    socket.onclose = () => serverClosed();
    return response;
  });
  const participant = await Participant.open(
    `ws://127.0.0.1:${server.addr.port}`,
    crypto.randomUUID(),
    "token",
  );
  await closed;
  await new Promise((resolve) => setTimeout(resolve, 100));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const answer = await Promise.race([
    participant.request({ action: "send_message", request_id: "after" }).then(
      () => "ack",
      (error: Error) => `rejected: ${error.message}`,
    ),
    new Promise((resolve) => timer = setTimeout(() => resolve("no answer in 2 s"), 2000)),
  ]);
  clearTimeout(timer);
  await participant.close();
  // an unanswered send holds a closed loop's slot for ever and counts in no figure
  assert.equal(answer, "rejected: socket closed");
});
