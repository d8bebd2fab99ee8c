/**
 * The client against a scripted server newer than it, which sends values the contract may
 * gain later (an error code, a media type): what it can act on still works.
 */
import assert from "node:assert/strict";
import { openScriptedClient } from "../tests/support/scripted_socket.ts";
import { historyPage, storedMessage } from "../tests/support/stored_messages.ts";
import { RequestError } from "./mod.ts";

const X = "00000000-0000-4000-8000-00000000000a";

Deno.test("an error with a code the client does not know rejects its request at once, with that code", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));

  const edit = client.request({
    action: "edit_message",
    message_id: crypto.randomUUID(),
    content: "?",
  });
  const written = await server.written(socket, "edit_message");
  socket.push({
    type: "error",
    code: "edit_window_closed",
    message: "too late to edit",
    request_id: written.request_id,
    action: "edit_message",
  });

  const error = await edit.then(() => undefined, (error: unknown) => error);
  assert.ok(error instanceof RequestError, `a RequestError, not ${error}`);
  assert.equal(error.code, "edit_window_closed");
  assert.equal(error.retryable, false, "an unknown code is not taken for a transient one");
  assert.match(error.message, /too late to edit/);

  // one no request waits for is an event, as a known one is
  socket.push({ type: "error", code: "maintenance_soon", message: "in 5 minutes" });
  assert.equal((await events.next("error")).code, "maintenance_soon");
  assert.deepEqual(events.all("invalid_frame"), []);
});

Deno.test("a message of a media type the client does not know is delivered in order, live and in a gap fill", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));

  const sticker = { ...storedMessage(X, 2), media_type: "sticker", content: null };
  socket.push({ type: "chat_message", chat_id: X, message: sticker });
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 4) });
  const fill = await server.written(socket, "load_latest_chat");
  assert.equal(fill.after_seq, 2);
  socket.answer(fill, historyPage(X, [{ ...storedMessage(X, 3), media_type: "poll" }, 4]));
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 5) });

  await events.next("chat_message", (frame) => frame.message.seq === 5);
  assert.deepEqual(
    events.all("chat_message").map((frame) => `${frame.message.seq} ${frame.message.media_type}`),
    ["2 sticker", "3 poll", "4 text", "5 text"],
  );
  assert.deepEqual(events.all("invalid_frame"), []);
});

Deno.test("a gap fill refused with a code the client does not know gives the held messages after a gap event", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));

  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 4) });
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 6) });
  const fill = await server.written(socket, "load_latest_chat");
  socket.push({
    type: "error",
    code: "history_archived",
    message: "ask the archive",
    request_id: fill.request_id,
    action: "load_latest_chat",
  });

  await events.next("chat_message", (frame) => frame.message.seq === 6);
  const gaps = events.all("gap").map((gap) => [gap.from_seq, gap.to_seq]);
  assert.deepEqual(gaps, [[2, 3], [5, 5]]);
  assert.deepEqual(events.all("chat_message").map((frame) => frame.message.seq), [4, 6]);
  const [first] = events.all("gap");
  assert.ok(first?.error instanceof RequestError && first.error.code === "history_archived");
  assert.deepEqual(events.all("error"), [], "the refusal went to the gap, not to the application");
});
