import assert from "node:assert/strict";
import { historyPage, storedMessage } from "../tests/support/stored_messages.ts";
import { RequestError } from "./errors.ts";
import { createRequests } from "./requests.ts";
import { createWatch } from "../tests/support/wait.ts";

const X = "0000000a-0000-4000-8000-00000000000a";

/** Requests over a socket that takes every frame; what was written, parsed. */
function openRequests() {
  const written: Array<{ request_id: string; action: string }> = [];
  const requests = createRequests({
    timeoutMs: 1_000,
    retryDelay: () => 1,
    write: (text) => {
      written.push(JSON.parse(text));
      return true;
    },
    unclaimed: () => {},
    handed: () => 0,
    written: () => 0,
    timedOut: () => false,
    answered: () => {},
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

Deno.test("a send refused with rate_limited is written again after a backoff, before later ones", async () => {
  const { changed, until } = createWatch();
  const written: Array<{ request_id: string; action: string; content?: string }> = [];
  const requests = createRequests({
    timeoutMs: 1_000,
    retryDelay: () => 5,
    write: (text) => {
      written.push(JSON.parse(text));
      changed();
      return true;
    },
    unclaimed: () => {},
    handed: () => 0,
    written: () => 0,
    timedOut: () => false,
    answered: () => {},
  });
  const send = (content: string) =>
    requests.add({ action: "send_message", receiver_id: "v", media_type: "text", content });
  const refusal = { type: "error", code: "rate_limited", message: "slow down" } as const;
  const seen = () => written.map((frame) => frame.content ?? frame.action);
  /** The server stores the send written last as `seq`. */
  const stored = (seq: number) => {
    requests.ack({
      type: "ack",
      request_id: written.at(-1)!.request_id,
      action: "send_message",
      message: storedMessage(X, seq),
    });
  };

  const sends = ["a", "b", "c"].map(send);
  // one send at a time: each waits for the answer to the one before
  assert.deepEqual(seen(), ["a"]);
  stored(1);
  assert.deepEqual(seen(), ["a", "b"]);
  requests.error({ ...refusal, request_id: written.at(-1)!.request_id, action: "send_message" });
  // made while the refusal is waited out: the send waits behind it and "c", the read does not
  sends.push(send("d"));
  const read = requests.add({ action: "read_up_to", seq: 1 });
  assert.deepEqual(seen(), ["a", "b", "read_up_to"]);
  const mark = written.at(-1)!;

  // after the backoff, the outbox one send at a time, in the order they were made
  await until(() => written.length === 4 || undefined, "b written again");
  assert.deepEqual(seen().slice(3), ["b"]);
  stored(2);
  assert.deepEqual(seen().slice(3), ["b", "c"]);
  stored(3);
  assert.deepEqual(seen().slice(3), ["b", "c", "d"]);
  stored(4);
  const messages = (await Promise.all(sends)) as Array<{ seq: number }>;
  assert.deepEqual(messages.map((message) => message.seq), [1, 2, 3, 4]);
  // only sends are kept: another action refused for now is the caller's to try again
  requests.error({ ...refusal, request_id: mark.request_id, action: "read_up_to" });
  await assert.rejects(read, (error) => error instanceof RequestError && error.retryable);
  assert.equal(requests.size, 0);
});
