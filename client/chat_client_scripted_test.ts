/**
 * The client against a scripted server: orderings a real server makes only now and then (a
 * page that comes after its request gave up, a push between a request and its answer) played
 * exactly, frame by frame.
 */
import assert from "node:assert/strict";
import { clockAhead, monotonicAhead } from "../tests/support/clock.ts";
import { openScriptedClient, type ScriptedSocket } from "../tests/support/scripted_socket.ts";
import {
  chatRow,
  historyPage,
  messageDeleted,
  storedMessage,
} from "../tests/support/stored_messages.ts";
import { STEADY_MS } from "./connection.ts";
import { type ChatClient, ClientClosedError, RequestError, RequestTimeoutError } from "./mod.ts";

const X = "00000000-0000-4000-8000-00000000000a";
const Y = "00000000-0000-4000-8000-00000000000b";
const Z = "00000000-0000-4000-8000-00000000000c";

/** A text message to the vendor, for `request()`. */
const textSend = (content: string) =>
  ({ action: "send_message", receiver_id: "vend-1", media_type: "text", content }) as const;

/** The server stores the send `request` wrote on `socket` as message `seq` of X, and acks it. */
function storeSend(socket: ScriptedSocket, request: { request_id?: string }, seq: number): void {
  socket.push({
    type: "ack",
    request_id: request.request_id!,
    action: "send_message",
    message: storedMessage(X, seq),
  });
}

Deno.test("a page whose request timed out is dropped, not given to a gap fill of another chat", async () => {
  await using scripted = openScriptedClient();
  const { client, events, server } = scripted;
  const socket = await scripted.accept({
    type: "chats",
    chats: [chatRow(X, 1), chatRow(Y, 1)],
    has_more: false,
  });

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
  const socket = await scripted.accept(historyPage(X, [40, 41], true));

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

Deno.test("a chats list the server pushes while list_chats is answered is an event, not the answer", async () => {
  await using scripted = openScriptedClient();
  const { client, events, server } = scripted;
  const socket = await scripted.accept({ type: "chats", chats: [chatRow(X, 1)], has_more: true });

  const older = client.request({ action: "list_chats", before: "2026-01-01T00:00:00.000Z" });
  const asked = await server.written(socket, "list_chats");
  // the user's chats changed (a vendor membership added): the server sends the first page
  // again, unasked, before it gets to the request
  socket.push({ type: "chats", chats: [chatRow(Y, 1), chatRow(X, 1)], has_more: true });
  socket.answer(asked, { type: "chats", chats: [chatRow(Z, 1)], has_more: false });

  assert.deepEqual((await older).chats.map((row) => row.chat_id), [Z]);
  assert.deepEqual(
    events.all("chats").map((frame) => frame.chats.map((row) => row.chat_id)),
    [[X], [Y, X]],
  );
});

Deno.test("the page of a list_chats that timed out is dropped, not taken for the user's chats", async () => {
  await using scripted = openScriptedClient();
  const { client, events, server } = scripted;
  const socket = await scripted.accept({ type: "chats", chats: [chatRow(X, 1)], has_more: true });

  await assert.rejects(
    client.request({ action: "list_chats", before: "2026-01-01T00:00:00.000Z" }, {
      timeoutMs: 1,
    }),
    RequestTimeoutError,
  );
  const timedOut = await server.written(socket, "list_chats");
  socket.push({ type: "chats", chats: [chatRow(Y, 1), chatRow(X, 1)], has_more: true });
  socket.answer(timedOut, { type: "chats", chats: [chatRow(Z, 1)], has_more: false });
  // a later push, with nothing asked, is news at once
  socket.push({ type: "chats", chats: [chatRow(Z, 2), chatRow(Y, 1)], has_more: true });

  await events.next("chats", (frame) => frame.chats[0]?.chat_id === Z);
  assert.deepEqual(
    events.all("chats").map((frame) => frame.chats.map((row) => row.chat_id)),
    [[X], [Y, X], [Z, Y]],
  );
});

Deno.test("a gap fill refused with rate_limited or unavailable is tried again", async () => {
  await using scripted = openScriptedClient({ chatId: X, timeoutMs: 50 });
  const { client, events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 3) });

  const refusal = { type: "error", action: "load_latest_chat", message: "try again" } as const;
  const first = await server.written(socket, "load_latest_chat");
  socket.push({ ...refusal, code: "rate_limited", request_id: first.request_id });
  const second = await server.written(socket, "load_latest_chat");
  socket.push({ ...refusal, code: "unavailable", request_id: second.request_id });
  const third = await server.written(socket, "load_latest_chat");
  socket.answer(third, historyPage(X, [2, 3]));

  assert.deepEqual([first, second, third].map((frame) => frame.after_seq), [1, 1, 1]);
  await events.next("chat_message", (frame) => frame.message.seq === 3);
  assert.deepEqual(events.all("chat_message").map((frame) => frame.message.seq), [2, 3]);
  assert.equal(client.stats.gapsFilled, 1);
});

Deno.test("a gap fill unanswered in time leaves the silent socket; the next connection fills the gap", async () => {
  await using scripted = openScriptedClient({ chatId: X, timeoutMs: 50 });
  const { client, events, server } = scripted;
  const silent = await scripted.accept(historyPage(X, [1]));
  silent.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 3) });
  const unanswered = await server.written(silent, "load_latest_chat");

  // no reply within the timeout: the socket is left as a lost one, not read on again
  const lost = await events.next("status", (status) => status.state === "reconnecting");
  assert.equal(lost.code, 1006);
  assert.ok(silent.readyState >= 2, "the client closed it");
  // its late page, should one come, is not taken
  silent.answer(unanswered, historyPage(X, [2, 3]));
  const next = await scripted.accept(historyPage(X, [3], true));
  const fill = await server.written(next, "load_latest_chat");
  assert.equal(fill.after_seq, 1);
  next.answer(fill, historyPage(X, [2, 3]));

  await events.next("chat_message", (frame) => frame.message.seq === 3);
  assert.deepEqual(events.all("chat_message").map((frame) => frame.message.seq), [2, 3]);
  assert.equal(silent.sent.filter((frame) => frame.action === "load_latest_chat").length, 1);
  assert.equal(client.stats.reconnects, 1);
});

Deno.test("a gap fill unanswered while a large upload is still leaving is tried again on that socket", async () => {
  await using scripted = openScriptedClient({ chatId: X, timeoutMs: 50 });
  const { client, events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  // a slow uplink: the read waits behind bytes not yet gone, the socket is not silent
  socket.bufferedAmount = 1 << 20;
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 3) });
  const late = await server.written(socket, "load_latest_chat");
  // some of them leave before the read's timeout
  socket.bufferedAmount -= 1 << 16;
  // no reply within the timeout: a second read; the first's late page is dropped
  const again = await server.written(socket, "load_latest_chat");
  socket.answer(late, historyPage(X, [2, 3]));
  socket.answer(again, historyPage(X, [2, 3]));

  assert.deepEqual([late, again].map((frame) => frame.after_seq), [1, 1]);
  await events.next("chat_message", (frame) => frame.message.seq === 3);
  assert.deepEqual(events.all("chat_message").map((frame) => frame.message.seq), [2, 3]);
  assert.equal(client.stats.reconnects, 0);
  assert.equal(client.stats.gapsFilled, 1);
});

Deno.test("a send unanswered while an upload is stuck (nothing leaves) leaves the socket; the outbox goes again", async () => {
  await using scripted = openScriptedClient({ chatId: X, timeoutMs: 50 });
  const { client, events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  // a large upload on a slow uplink, behind bytes still leaving
  socket.bufferedAmount = 1 << 20;
  const upload = client.request(textSend("x".repeat(4000)));
  await server.written(socket, "send_message");
  // those bytes and part of the upload leave (the runtime shows a frame leaving in part)
  socket.bufferedAmount -= (1 << 20) + 1000;
  const sent = client.request(textSend("hello"));
  await server.written(socket, "send_message");
  // then the connection goes silent: the upload's bytes wait, none leave
  await assert.rejects(upload, RequestTimeoutError);

  const lost = await events.next("status", (status) => status.state === "reconnecting");
  assert.equal(lost.code, 1006);
  const next = await scripted.accept(historyPage(X, [1]));
  storeSend(next, await server.written(next, "send_message"), 2);
  assert.equal((await sent).seq, 2);
});

Deno.test("a send unanswered in time leaves the socket though a frame written after it has not left yet", async () => {
  await using scripted = openScriptedClient({ chatId: X, timeoutMs: 50 });
  const { client, events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  const sent = client.request(textSend("hello"));
  await server.written(socket, "send_message");
  // the send left whole; the connection then went silent. Just before the send's timeout the
  // user types: that frame is written, and the runtime has not yet taken it (it counts a
  // frame written until its write is done, a turn of the event loop later at best)
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(client.notify({ action: "typing", is_typing: true }), true);
  socket.bufferedAmount = new TextEncoder().encode(JSON.stringify(socket.sent.at(-1))).byteLength;

  // the bytes waiting were written after the send, and kept none of it back: the socket is silent
  const lost = await events.next("status", (status) => status.state === "reconnecting", 1_000);
  assert.equal(lost.code, 1006);
  const next = await scripted.accept(historyPage(X, [1]));
  storeSend(next, await server.written(next, "send_message"), 2);
  assert.equal((await sent).seq, 2);
});

Deno.test("a chats catch-up page unanswered in time leaves the silent socket too", async () => {
  await using scripted = openScriptedClient({ timeoutMs: 50 });
  const { events, server } = scripted;
  const first = await scripted.accept({ type: "chats", chats: [chatRow(X, 1)], has_more: false });
  first.serverClose(1006);
  await events.next("status", (status) => status.state === "reconnecting");
  // X had activity no newer than the page's last row: it is looked for further down
  const silent = await scripted.accept({ type: "chats", chats: [chatRow(Y, 1)], has_more: true });
  await server.written(silent, "list_chats");

  const lost = await events.next("status", (status) => status.state === "reconnecting");
  assert.equal(lost.code, 1006);
  assert.equal(silent.sent.filter((frame) => frame.action === "list_chats").length, 1);
  const next = await scripted.accept({ type: "chats", chats: [chatRow(Y, 1)], has_more: true });
  assert.equal((await server.written(next, "list_chats")).before, chatRow(Y, 1).updated_at);
});

Deno.test("a heartbeat's page is its own: a message in it is not given before its event", async () => {
  await using scripted = openScriptedClient({ chatId: X, heartbeatMs: 10 });
  const { events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  const check = await server.written(socket, "load_latest_chat");
  assert.deepEqual([check.limit, check.after_seq], [1, 1]);
  // #2 was stored just before the check read: its event is on its way
  socket.answer(check, historyPage(X, [2], true));
  // the next check is written once the answer was taken
  await server.written(socket, "load_latest_chat");
  assert.deepEqual(events.all("chat_message"), []);
  assert.equal(events.all("latest_chat").length, 1, "the first page only");

  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 2) });
  await events.next("chat_message");
  assert.deepEqual(events.all("chat_message").map((frame) => frame.message.seq), [2]);
});

Deno.test("a wall clock set back does not put off the heartbeat's check", async () => {
  await using scripted = openScriptedClient({ chatId: X, heartbeatMs: 20 });
  const { server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  // an NTP step, a device's time set by its new network: an hour back, just after the page
  using _setBack = clockAhead(-3_600_000);

  const check = await server.written(socket, "load_latest_chat");
  assert.deepEqual([check.limit, check.after_seq], [1, 1]);
});

/** What the application is shown of the messages and their changes, in order. */
function shown(client: ChatClient): string[] {
  const log: string[] = [];
  client.on("chat_message", ({ message }) => {
    const read = message.is_read ? ` (read ${message.read_at})` : "";
    log.push(`#${message.seq} ${message.deleted ? "(deleted)" : message.content}${read}`);
  });
  client.on("message_read", ({ seq }) => log.push(`read #${seq}`));
  client.on("messages_read", ({ up_to_seq }) => log.push(`read up to #${up_to_seq}`));
  client.on("message_deleted", ({ seq }) => log.push(`deleted #${seq}`));
  client.on("message_edited", ({ message }) => {
    log.push(`edited #${message.seq} ${message.content}`);
  });
  return log;
}

/** Connects to chat X with seq 1; seq 3 (`content`) comes live and waits while 2 is read. */
async function holdingThird(scripted: ReturnType<typeof openScriptedClient>, content: string) {
  const log = shown(scripted.client);
  const socket = await scripted.accept(historyPage(X, [1]));
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 3, { content }) });
  const fill = await scripted.server.written(socket, "load_latest_chat");
  return { log, socket, fill };
}

const LATER = "2026-01-01T00:00:05.000Z";

Deno.test("a message deleted while held behind a gap comes deleted, then its message_deleted", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { log, socket, fill } = await holdingThird(scripted, "secret");
  socket.push(messageDeleted(X, 3));
  // the page was read before the deletion: it still has the text
  socket.answer(fill, historyPage(X, [2, storedMessage(X, 3, { content: "secret" })]));

  await scripted.events.next("message_deleted");
  assert.deepEqual(log, ["#2 #2", "#3 (deleted)", "deleted #3"]);
  const third = scripted.events.all("chat_message")[1]?.message;
  assert.deepEqual([third?.content, third?.media_url, third?.deleted], [null, null, true]);
});

Deno.test("a message edited while held behind a gap comes with the new text, never the old after it", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { log, socket, fill } = await holdingThird(scripted, "#3");
  const edited = storedMessage(X, 3, {
    content: "#3, edited",
    edited_at: LATER,
    updated_at: LATER,
  });
  socket.push({ type: "message_edited", chat_id: X, message: edited });
  // read before the edit: the stored copy has the old text
  socket.answer(fill, historyPage(X, [2, 3]));

  await scripted.events.next("message_edited");
  assert.deepEqual(log, ["#2 #2", "#3 #3, edited", "edited #3 #3, edited"]);
});

Deno.test("the stored copy of a held message replaces the live one: a deletion made meanwhile shows", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { log, socket, fill } = await holdingThird(scripted, "secret");
  const tombstone = storedMessage(X, 3, { content: null, deleted: true, updated_at: LATER });
  socket.answer(fill, historyPage(X, [2, tombstone]));

  await scripted.events.next("chat_message", (frame) => frame.message.seq === 3);
  assert.deepEqual(log, ["#2 #2", "#3 (deleted)"]);
});

Deno.test("a message read while held behind a gap comes read, then its message_read", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { log, socket, fill } = await holdingThird(scripted, "#3");
  const mark = { chat_id: X, message_id: `${X}-3`, seq: 3, reader_id: "cust-1", read_at: LATER };
  socket.push({ type: "message_read", ...mark });
  // the page was read before the mark: the stored copy is unread
  socket.answer(fill, historyPage(X, [2, 3]));

  await scripted.events.next("message_read");
  assert.deepEqual(log, ["#2 #2", `#3 #3 (read ${LATER})`, "read #3"]);
});

Deno.test("messages read up to a held one are read again from the store, then messages_read", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { log, socket, fill } = await holdingThird(scripted, "#3");
  socket.push({
    type: "messages_read",
    chat_id: X,
    reader_id: "cust-1",
    up_to_seq: 3,
    count: 2,
    read_at: LATER,
  });
  socket.answer(fill, historyPage(X, [2, 3]));
  // that page may predate the mark: the client reads again, after it
  const again = await scripted.server.written(socket, "load_latest_chat");
  assert.equal(again.after_seq, 1);
  const read = { is_read: true, read_at: LATER, updated_at: LATER };
  socket.answer(again, historyPage(X, [storedMessage(X, 2, read), storedMessage(X, 3, read)]));

  await scripted.events.next("messages_read");
  assert.deepEqual(log, [`#2 #2 (read ${LATER})`, `#3 #3 (read ${LATER})`, "read up to #3"]);
});

Deno.test("after 4401 on a ready socket a token function is asked again; a 4401 at connect stops", async () => {
  let asked = 0;
  await using scripted = openScriptedClient({ chatId: X, token: () => `token-${++asked}` });
  const { client, events, server } = scripted;
  const first = await scripted.accept(historyPage(X, [1]));
  // the token expired while the socket was open
  first.serverClose(4401, "token expired");
  const retrying = await events.next("status", (status) => status.state === "reconnecting");
  assert.equal(retrying.code, 4401);
  const second = await server.socket(1);
  assert.equal(second.token, "token-2");

  // the fresh token is refused too: that one will not get better
  second.serverClose(4401, "invalid token");
  const closed = await events.next("status", (status) => status.state === "closed");
  assert.equal(closed.code, 4401);
  assert.equal(server.sockets.length, 2);
  await assert.rejects(client.ready(), ClientClosedError);
});

Deno.test("after 4401 on a ready socket a fixed token stops the client", async () => {
  await using scripted = openScriptedClient({ chatId: X, token: "token-1" });
  const { client, events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  socket.serverClose(4401, "token expired");
  const closed = await events.next("status", (status) => status.state === "closed");
  assert.equal(closed.code, 4401);
  assert.equal(server.sockets.length, 1);
  await assert.rejects(client.ready(), ClientClosedError);
});

Deno.test("after 4429 the reconnect delay keeps growing though each socket had been open", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const delays: number[] = [];
  for (const code of [4429, 4429, 4429, 1006]) {
    const socket = await scripted.accept(historyPage(X, [1]));
    // the last connection lasts (STEADY_MS)
    using _lasted = code === 1006 ? monotonicAhead(STEADY_MS) : undefined;
    socket.serverClose(code, code === 4429 ? "flooding" : "");
    const status = await scripted.events.next("status", (next) => next.state === "reconnecting");
    delays.push(status.retryInMs ?? -1);
  }
  // a connection lost after it had lasted starts over
  assert.deepEqual(delays, [1, 2, 4, 1]);
});

Deno.test("after 1013 (try again later) the reconnect delay keeps growing though each socket had been open", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const delays: number[] = [];
  // an overloaded server lets a slow reader go as soon as its first page is out, each time
  for (const code of [1013, 1013, 1013, 1013, 1006]) {
    const socket = await scripted.accept(historyPage(X, [1]));
    using _lasted = code === 1006 ? monotonicAhead(STEADY_MS) : undefined;
    socket.serverClose(code, code === 1013 ? "slow consumer" : "");
    const status = await scripted.events.next("status", (next) => next.state === "reconnecting");
    delays.push(status.retryInMs ?? -1);
  }
  assert.deepEqual(delays, [1, 2, 4, 8, 1]);
});

Deno.test("after 1011 (the server failed) the reconnect delay keeps growing though each socket had been open", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const delays: number[] = [];
  // a server whose unread read fails after the first page closes each socket so: coming back at
  // once, every client would ask it again four times a second
  for (const code of [1011, 1011, 1011, 1006]) {
    const socket = await scripted.accept(historyPage(X, [1]));
    using _lasted = code === 1006 ? monotonicAhead(STEADY_MS) : undefined;
    socket.serverClose(code, code === 1011 ? "internal" : "");
    const status = await scripted.events.next("status", (next) => next.state === "reconnecting");
    delays.push(status.retryInMs ?? -1);
  }
  assert.deepEqual(delays, [1, 2, 4, 1]);
});

Deno.test("a client given an aborted signal is closed from the start and opens no socket", async () => {
  await using scripted = openScriptedClient({ chatId: X, signal: AbortSignal.abort() });
  assert.equal(scripted.client.status.state, "closed");
  await assert.rejects(
    scripted.client.ready(),
    (error) => error instanceof ClientClosedError && error.code === 1000,
  );
  await assert.rejects(scripted.client.request({ action: "unread_message" }), ClientClosedError);
  assert.equal(scripted.server.sockets.length, 0);
});

Deno.test("a server slower than timeoutMs is not reconnected to at once, again and again: the delay grows", async () => {
  await using scripted = openScriptedClient({ chatId: X, timeoutMs: 200 });
  const { client, events, server } = scripted;
  const sent = client.request(textSend("hello"));
  const delays: number[] = [];
  // alive but slow: each connection opens, and the outbox's send gets its reply too late
  for (let socketIndex = 0; socketIndex < 4; socketIndex++) {
    const socket = await scripted.accept(historyPage(X, [1]));
    await server.written(socket, "send_message");
    const left = await events.next("status", (status) => status.state === "reconnecting");
    assert.equal(left.code, 1006);
    delays.push(left.retryInMs ?? -1);
  }
  // a connection that answers in time, later gone silent, starts over
  const healthy = await scripted.accept(historyPage(X, [1]));
  storeSend(healthy, await server.written(healthy, "send_message"), 2);
  assert.equal((await sent).seq, 2);
  const second = client.request(textSend("later"));
  await server.written(healthy, "send_message");
  const silent = await events.next("status", (status) => status.state === "reconnecting");
  delays.push(silent.retryInMs ?? -1);
  second.catch(() => {});
  assert.deepEqual(delays, [1, 2, 4, 8, 1]);
});

/** A refusal for good of the client's read `request` (a code it does not know: not retryable). */
const refusedForGood = (request: { request_id?: string }) => ({
  type: "error" as const,
  code: "history_archived",
  message: "ask the archive",
  request_id: request.request_id,
  action: "load_latest_chat",
});

Deno.test("a chats row's news whose read is refused for good is a gap up to the row's newest message", async () => {
  await using scripted = openScriptedClient();
  const { client, events, server } = scripted;
  const first = await scripted.accept({ type: "chats", chats: [chatRow(X, 3)], has_more: false });
  first.serverClose(1006);
  await events.next("status", (status) => status.state === "reconnecting");
  // X had messages 4 to 6 while the client was away, none of them held: the read is refused
  const socket = await scripted.accept({ type: "chats", chats: [chatRow(X, 6)], has_more: false });
  const fill = await server.written(socket, "load_latest_chat");
  assert.deepEqual([fill.chat_id, fill.after_seq], [X, 3]);
  socket.push(refusedForGood(fill));

  const gap = await events.next("gap");
  assert.deepEqual([gap.chat_id, gap.from_seq, gap.to_seq], [X, 4, 6]);
  assert.ok(gap.error instanceof RequestError && gap.error.code === "history_archived");
  // the next message is given at once: nothing before it is read again or announced again
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 7) });
  await events.next("chat_message", (frame) => frame.message.seq === 7);
  assert.equal(socket.sent.filter((frame) => frame.action === "load_latest_chat").length, 1);
  assert.equal(events.all("gap").length, 1);
  assert.deepEqual([client.stats.gapsFilled, client.stats.gapsSkipped], [0, 1]);
});

Deno.test("a deletion of a message not yet seen whose read is refused for good comes after a gap up to it", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  const given: string[] = [];
  client.on("gap", (gap) => given.push(`gap #${gap.from_seq}-#${gap.to_seq}`));
  client.on("message_deleted", (frame) => given.push(`message_deleted #${frame.seq}`));
  client.on("chat_message", (frame) => given.push(`#${frame.message.seq}`));
  socket.push(messageDeleted(X, 3));
  const fill = await server.written(socket, "load_latest_chat");
  assert.equal(fill.after_seq, 1);
  socket.push(refusedForGood(fill));

  await events.next("message_deleted");
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 4) });
  await events.next("chat_message", (frame) => frame.message.seq === 4);
  assert.deepEqual(given, ["gap #2-#3", "message_deleted #3", "#4"]);
  assert.equal(socket.sent.filter((frame) => frame.action === "load_latest_chat").length, 1);
});

Deno.test("a gap the store no longer has is counted skipped, not filled", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 3) });
  const fill = await server.written(socket, "load_latest_chat");
  // read after 3 came: only history removed leaves nothing before it
  socket.answer(fill, historyPage(X, []));

  await events.next("chat_message", (frame) => frame.message.seq === 3);
  const [gap] = events.all("gap");
  assert.deepEqual([gap?.from_seq, gap?.to_seq, gap?.error], [2, 2, undefined]);
  assert.deepEqual([client.stats.gapsFilled, client.stats.gapsSkipped], [0, 1]);
});

Deno.test("a page passing over messages the store no longer has announces them as gaps and reads on", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  const given: string[] = [];
  client.on("gap", (gap) => given.push(`gap #${gap.from_seq}-#${gap.to_seq} ${gap.error}`));
  client.on("chat_message", (frame) => given.push(`#${frame.message.seq}`));
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 7) });
  const fill = await server.written(socket, "load_latest_chat");
  assert.equal(fill.after_seq, 1);
  // 2 and 4 were removed from the store (not tombstoned): the page starts late and skips one
  socket.answer(fill, historyPage(X, [3, 5], true));
  const next = await server.written(socket, "load_latest_chat");
  assert.equal(next.after_seq, 5);
  socket.answer(next, historyPage(X, [6, 7]));

  await events.next("chat_message", (frame) => frame.message.seq === 7);
  assert.deepEqual(given, [
    "gap #2-#2 undefined",
    "#3",
    "gap #4-#4 undefined",
    "#5",
    "#6",
    "#7",
  ]);
  assert.deepEqual([client.stats.gapsFilled, client.stats.gapsSkipped], [0, 2]);
  // the filling ended: the next message is given at once
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 8) });
  await events.next("chat_message", (frame) => frame.message.seq === 8);
  assert.equal(socket.sent.filter((frame) => frame.action === "load_latest_chat").length, 2);
});

/** The server's refusal of `request`: the user is not (or no longer) in its chat. */
const forbidden = (request: { request_id?: string; action?: string }) => ({
  type: "error" as const,
  code: "forbidden",
  message: "not a participant",
  request_id: request.request_id,
  action: request.action,
});

Deno.test("on /v1/ws/chats/ the heartbeat reads no chat the user left, until a chats list names it again", async () => {
  await using scripted = openScriptedClient({ heartbeatMs: 10 });
  const { server } = scripted;
  const socket = await scripted.accept({
    type: "chats",
    chats: [chatRow(X, 1), chatRow(Y, 1)],
    has_more: false,
  });
  const first = await server.written(socket, "load_latest_chat");
  assert.equal(first.chat_id, X);
  // the user's membership of X's vendor was revoked: the server pushes no list for that
  socket.push(forbidden(first));
  const second = await server.written(socket, "load_latest_chat");
  assert.equal(second.chat_id, Y);
  socket.push(forbidden(second));
  // no chat known is the user's
  const listed = await server.written(socket, "list_chats");
  assert.equal(listed.before, new Date(0).toISOString());
  socket.answer(listed, { type: "chats", chats: [], has_more: false });
  // the membership is back: the server sends the list again
  socket.push({ type: "chats", chats: [chatRow(X, 1)], has_more: false });
  const again = await server.written(socket, "load_latest_chat");
  assert.deepEqual([again.chat_id, again.after_seq], [X, 1]);
});

Deno.test("a chats list the server pushes with a known chat's newer message reads what the client missed", async () => {
  await using scripted = openScriptedClient();
  const { events, server } = scripted;
  const socket = await scripted.accept({ type: "chats", chats: [chatRow(X, 5)], has_more: false });
  // the user's membership of X's vendor was revoked, then given back: 6 and 7 were stored
  // meanwhile and came on no socket; the server sends the list again
  socket.push({ type: "chats", chats: [chatRow(X, 7), chatRow(Y, 1)], has_more: false });
  const fill = await server.written(socket, "load_latest_chat");
  assert.deepEqual([fill.chat_id, fill.after_seq], [X, 5]);
  socket.answer(fill, historyPage(X, [6, 7]));

  await events.next("chat_message", (frame) => frame.message.seq === 7);
  assert.deepEqual(events.all("chat_message").map((frame) => frame.message.seq), [6, 7]);
  assert.equal(events.all("chats").length, 2);
});

Deno.test({
  name: "a client closed by a listener of its open status leaves no heartbeat running",
  // a heartbeat timer left running after close() fails the test as a leak
  sanitizeOps: true,
}, async () => {
  await using scripted = openScriptedClient({
    chatId: X,
    heartbeatMs: 60_000,
    closeTimeoutMs: 10,
  });
  const { client, server } = scripted;
  client.on("status", (status) => {
    if (status.state === "open") void client.close();
  });
  const socket = await server.socket(0);
  // a hung server: the close frame is never answered, so the socket's close event never comes
  socket.close = () => {
    socket.readyState = 2;
  };
  socket.push(historyPage(X, [1]));
  assert.equal(client.status.state, "closed");
  await assert.rejects(client.ready(), ClientClosedError);
});

Deno.test("timeouts of Infinity, or past what setTimeout can wait, never end: sends wait for their ack", async () => {
  for (const timeoutMs of [Infinity, 2 ** 31]) {
    await using scripted = openScriptedClient({ chatId: X, timeoutMs });
    const { client, server } = scripted;
    const socket = await scripted.accept(historyPage(X, [1]));
    const sent = client.request(textSend("hello"));
    const history = client.request({ action: "load_latest_chat", before_seq: 2 }, { timeoutMs });
    // seen settled below, or not at all when the assertions before fail
    sent.catch(() => {});
    history.catch(() => {});
    const send = await server.written(socket, "send_message");
    const load = await server.written(socket, "load_latest_chat");
    // setTimeout takes such a delay as 0 or 1 ms
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(client.status.state, "open", `timeoutMs ${timeoutMs}: the socket is kept`);
    storeSend(socket, send, 2);
    socket.answer(load, historyPage(X, [1]));
    assert.equal((await sent).seq, 2);
    assert.deepEqual((await history).messages.map((message) => message.seq), [1]);
    assert.equal(server.sockets.length, 1);
  }
});

Deno.test("a heartbeatMs of Infinity, or past what setTimeout can wait, sets no timer that fires at once", async () => {
  for (const heartbeatMs of [Infinity, 2 ** 32]) {
    await using scripted = openScriptedClient({ chatId: X, heartbeatMs });
    await scripted.accept(historyPage(X, [1]));
    const set = setTimeout;
    let timers = 0;
    globalThis.setTimeout = ((...args: Parameters<typeof set>) => {
      timers++;
      return set(...args);
    }) as typeof setTimeout;
    try {
      await new Promise((resolve) => set(resolve, 30));
    } finally {
      globalThis.setTimeout = set;
    }
    assert.ok(timers < 3, `heartbeatMs ${heartbeatMs}: ${timers} timers set while idle`);
  }
});

Deno.test("a send answered unavailable (a database failover) stays in the outbox and is written again with its client_id", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  const sent = client.request(textSend("during the failover"));
  const first = await server.written(socket, "send_message");
  socket.push({
    type: "error",
    code: "unavailable",
    message: "the database is not available",
    request_id: first.request_id,
    action: "send_message",
  });

  // the server says: try again; the same client_id makes it safe
  const again = await server.written(socket, "send_message");
  assert.equal(again.client_id, first.client_id);
  storeSend(socket, again, 2);
  assert.equal((await sent).seq, 2);
});

Deno.test("requests made while away do not keep the heartbeat from a socket gone silent", async () => {
  await using scripted = openScriptedClient({ chatId: X, heartbeatMs: 20, timeoutMs: 100 });
  const { client, events, server } = scripted;
  const first = await scripted.accept(historyPage(X, [1]));
  first.serverClose(1006);
  await events.next("status", (status) => status.state === "reconnecting");
  // made while away, each with a long timeout of its own
  const reads = [1, 2, 3].map(() =>
    client.request({ action: "read_message", message_id: Y }, { timeoutMs: 2_000 })
      .then(() => "ok", (error) => error.name)
  );
  // the next socket goes silent once opened: the backlog's first read gets no answer
  const silent = await scripted.accept(historyPage(X, [1]));
  await server.written(silent, "read_message");
  // the check is written all the same, and its silence leaves the socket
  await server.written(silent, "load_latest_chat");
  const lost = await events.next("status", (status) => status.state === "reconnecting", 1_000);
  assert.equal(lost.code, 1006);

  const next = await scripted.accept(historyPage(X, [1]));
  for (let index = 0; index < 2; index++) next.answer(await server.written(next, "read_message"));
  assert.deepEqual(await Promise.all(reads), ["ConnectionLostError", "ok", "ok"]);
});
