import assert from "node:assert/strict";
import { historyPage } from "../tests/support/stored_messages.ts";
import { createRequests } from "./requests.ts";

const X = "0000000a-0000-4000-8000-00000000000a";

/** Requests over a socket that takes every frame; what was written, parsed. */
function openRequests() {
  const written: Array<{ request_id: string; action: string }> = [];
  const requests = createRequests({
    timeoutMs: 1_000,
    write: (text) => {
      written.push(JSON.parse(text));
      return true;
    },
    unclaimed: () => {},
  });
  return { requests, written };
}

Deno.test("a chat_id in capitals is answered by the server's lower-case latest_chat and unread_messages", async () => {
  const { requests, written } = openRequests();
  const upper = X.toUpperCase();

  const history = requests.add({ action: "load_latest_chat", chat_id: upper });
  const page = historyPage(X, [1]);
  assert.equal(requests.page(page), true);
  requests.ack({ type: "ack", request_id: written[0]!.request_id, action: "load_latest_chat" });
  assert.deepEqual(await history, page);

  const unread = requests.add({ action: "unread_message", chat_id: upper });
  const answer = { type: "unread_messages" as const, chat_id: X, count: 0, messages: [] };
  requests.unread(answer);
  requests.ack({ type: "ack", request_id: written[1]!.request_id, action: "unread_message" });
  assert.deepEqual(await unread, answer);
});
