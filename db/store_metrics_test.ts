import assert from "node:assert/strict";
import type { ChatStore, NewMessage } from "../chat/ports.ts";
import { createMetrics } from "../observability/metrics.ts";
import { withStoreMetrics } from "./store_metrics.ts";

const newMessage: NewMessage = {
  chat_id: "chat-1",
  sender_id: "alice",
  sender_side: "customer",
  receiver_id: "acme",
  media_type: "text",
  content: "hello",
  media_id: null,
  client_id: "c1",
};

/** Just the methods these tests call; the wrapper times whatever a store has. */
function fakeStore(duplicate: boolean): ChatStore {
  const fake = {
    insertMessage: () => Promise.resolve({ message: {}, duplicate }),
    getChat: () => Promise.reject(new Error("connection refused")),
  };
  return fake as unknown as ChatStore;
}

Deno.test("withStoreMetrics times each operation by name and outcome", async () => {
  const metrics = createMetrics();
  const store = withStoreMetrics(fakeStore(false), metrics);
  await store.insertMessage(newMessage);
  await assert.rejects(store.getChat("chat-1"), /connection refused/);
  const text = await metrics.text();
  assert.match(
    text,
    /^chat_db_query_duration_seconds_count\{operation="insertMessage",outcome="ok"\} 1$/m,
  );
  assert.match(
    text,
    /^chat_db_query_duration_seconds_count\{operation="getChat",outcome="error"\} 1$/m,
  );
});

Deno.test("withStoreMetrics counts a stored message, but not a repeated client_id", async () => {
  const metrics = createMetrics();
  await withStoreMetrics(fakeStore(false), metrics).insertMessage(newMessage);
  await withStoreMetrics(fakeStore(true), metrics).insertMessage(newMessage);
  assert.match(await metrics.text(), /^chat_messages_stored_total\{media_type="text"\} 1$/m);
});
