/**
 * The client against a scripted server: orderings a real server makes only now and then (a
 * page that comes after its request gave up, a push between a request and its answer) played
 * exactly, frame by frame.
 */
import assert from "node:assert/strict";
import { openScriptedClient } from "../tests/support/scripted_socket.ts";
import { chatRow, historyPage, storedMessage } from "../tests/support/stored_messages.ts";
import { RequestTimeoutError } from "./mod.ts";

const X = "00000000-0000-4000-8000-00000000000a";
const Y = "00000000-0000-4000-8000-00000000000b";

Deno.test("a page whose request timed out is dropped, not given to a gap fill of another chat", async () => {
  await using scripted = openScriptedClient();
  const { client, events, server } = scripted;
  const socket = await server.socket(0);
  socket.push({ type: "chats", chats: [chatRow(X, 1), chatRow(Y, 1)], has_more: false });
  await client.ready();

  // the application asks for X's history; the server is slow and the request gives up
  await assert.rejects(
    client.request({ action: "load_latest_chat", chat_id: X }, { timeoutMs: 1 }),
    RequestTimeoutError,
  );
  const timedOut = await server.written(socket, "load_latest_chat");
  // a live message of Y shows a gap: the client reads Y after seq 1
  socket.push({ type: "chat_message", chat_id: Y, message: storedMessage(Y, 3) });
  const fill = await server.written(socket, "load_latest_chat");
  assert.deepEqual([fill.chat_id, fill.after_seq], [Y, 1]);

  // the server answers both, in order
  socket.answer(timedOut, historyPage(X, [2]));
  socket.answer(fill, historyPage(Y, [2, 3]));

  await events.next("chat_message", (frame) => frame.message.seq === 3);
  assert.deepEqual(
    events.all("chat_message").map((frame) => `${frame.chat_id}: ${frame.message.id}`),
    [`${Y}: ${Y}-2`, `${Y}: ${Y}-3`],
  );
});

Deno.test("an aborted history request's page does not make the gap fill skip a message", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, events, server } = scripted;
  const socket = await server.socket(0);
  socket.push(historyPage(X, [40, 41], true));
  await client.ready();

  // the user scrolls up, then away: the older page is no longer wanted
  const scroll = new AbortController();
  const older = client.request({ action: "load_latest_chat", before_seq: 3 }, {
    signal: scroll.signal,
  });
  const aborted = await server.written(socket, "load_latest_chat");
  scroll.abort();
  await assert.rejects(older);
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 43) });
  const fill = await server.written(socket, "load_latest_chat");
  assert.equal(fill.after_seq, 41);

  socket.answer(aborted, historyPage(X, [1, 2]));
  socket.answer(fill, historyPage(X, [42, 43]));

  await events.next("chat_message", (frame) => frame.message.seq === 43);
  assert.deepEqual(events.all("chat_message").map((frame) => frame.message.seq), [42, 43]);
  assert.equal(events.all("latest_chat").length, 1, "the first page only");
});
