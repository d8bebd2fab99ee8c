/**
 * After a reconnect to /v1/ws/chats/, chats the client knew that the first page no longer
 * lists, against a scripted server.
 */
import assert from "node:assert/strict";
import { openScriptedClient } from "../tests/support/scripted_socket.ts";
import { chatRow, historyPage } from "../tests/support/stored_messages.ts";

const X = "00000000-0000-4000-8000-00000000000a";
const Y = "00000000-0000-4000-8000-00000000000b";
const Z = "00000000-0000-4000-8000-00000000000c";

type Row = ReturnType<typeof chatRow>;

/** A `chats` row of `chatId` whose newest message is `seq`, with activity at `at`. */
function row(chatId: string, seq: number, at: string): Row {
  return { ...chatRow(chatId, seq), updated_at: at };
}

/** A page of chats, newest activity first, with more after it or not. */
function page(chats: Row[], hasMore: boolean) {
  return { type: "chats" as const, chats, has_more: hasMore };
}

/**
 * The client's first connection lists `known`; it is lost; the next one's first page is
 * `rows`, with more after them. Returns that socket.
 */
async function reconnected(
  scripted: ReturnType<typeof openScriptedClient>,
  known: Row[],
  rows: Row[],
) {
  const first = await scripted.accept(page(known, false));
  first.serverClose(1006);
  return await scripted.accept(page(rows, true));
}

Deno.test("after a reconnect, a known chat pushed off the first chats page is read on to, and filled", async () => {
  await using scripted = openScriptedClient();
  const { events, server } = scripted;
  const before = "2026-01-01T00:00:00.000Z";
  // meanwhile X had a message, and so many chats had activity that it is not on the first page
  const socket = await reconnected(scripted, [row(X, 1, before), row(Y, 1, before)], [
    row(Z, 4, "2026-01-02T00:00:02.000Z"),
    row(Y, 1, "2026-01-02T00:00:01.000Z"),
  ]);
  const listed = await server.written(socket, "list_chats");
  assert.equal(listed.before, "2026-01-02T00:00:01.000Z");
  socket.answer(listed, page([row(X, 2, "2026-01-02T00:00:00.000Z")], true));
  const fill = await server.written(socket, "load_latest_chat");
  assert.deepEqual([fill.chat_id, fill.after_seq], [X, 1]);
  socket.answer(fill, historyPage(X, [2]));

  assert.deepEqual(await events.seqs(X, 1), [2]);
  // every chat known was on a page: the list is not read to its end
  assert.equal(socket.sent.filter((frame) => frame.action === "list_chats").length, 1);
  assert.equal(events.all("chats").length, 2, "the pages read on are not events");
});

Deno.test("after a reconnect, a known chat no longer listed is looked for no further down than its activity", async () => {
  const V = "00000000-0000-4000-8000-00000000000d";
  const W = "00000000-0000-4000-8000-00000000000e";
  await using scripted = openScriptedClient();
  const { server } = scripted;
  // Y is no longer the user's (a vendor membership removed): it is on no page
  const socket = await reconnected(
    scripted,
    [row(Y, 1, "2026-01-03T00:00:00.000Z"), row(X, 1, "2026-01-01T00:00:00.000Z")],
    [row(Z, 1, "2026-01-05T00:00:00.000Z"), row(W, 1, "2026-01-04T00:00:00.000Z")],
  );
  const listed = await server.written(socket, "list_chats");
  socket.answer(listed, page([row(V, 1, "2026-01-02T00:00:00.000Z")], true));
  // Y's activity is newer than this page's oldest row: had it been listed, it would have come
  const listedAgain = await server.written(socket, "list_chats");
  assert.equal(listedAgain.before, "2026-01-02T00:00:00.000Z");
  socket.answer(listedAgain, page([row(X, 1, "2026-01-01T00:00:00.000Z")], true));
  // X had nothing new. A request answered after that page: by then the client has taken it
  const done = scripted.client.request({ action: "typing", chat_id: X, is_typing: false });
  const typing = await server.written(socket, "typing");
  socket.answer(typing);
  await done;
  assert.deepEqual(
    socket.sent.filter((frame) => frame.action !== "typing").map((frame) => frame.action),
    ["list_chats", "list_chats"],
  );
});
