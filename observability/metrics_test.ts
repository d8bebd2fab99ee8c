import assert from "node:assert/strict";
import { createMetrics } from "./metrics.ts";

Deno.test("createMetrics() gives each instance instruments of its own", async () => {
  const first = createMetrics();
  const second = createMetrics();
  first.messagesStored.inc({ media_type: "text" });
  assert.match(await first.text(), /^chat_messages_stored_total\{media_type="text"\} 1$/m);
  assert.doesNotMatch(await second.text(), /^chat_messages_stored_total\{/m);
});

Deno.test("text() samples event-loop lag and process memory at scrape time", async () => {
  const text = await createMetrics().text();
  assert.match(text, /^chat_event_loop_lag_seconds \d/m);
  assert.match(text, /^chat_process_memory_bytes\{kind="rss"\} [1-9]\d*$/m);
  assert.match(text, /^chat_process_memory_bytes\{kind="heap_used"\} [1-9]\d*$/m);
});
