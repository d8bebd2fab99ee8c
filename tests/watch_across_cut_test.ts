import assert from "node:assert/strict";
import { Status } from "./support/admin_client.ts";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { joinChat, sendText } from "./support/steps.ts";
import { follow } from "./support/watch_stream.ts";
import { within } from "./support/wait.ts";

const settings = { WS_RATE_PER_SECOND: "1000", WS_RATE_BURST: "1000" };

/** The message ids of a stream's `chat_message` events, in the order they came. */
function messageIds(events: Array<Record<string, unknown>>): unknown[] {
  return events.filter((event) => event.type === "CHAT_EVENT_TYPE_CHAT_MESSAGE")
    .map((event) => event.message_id);
}

Deno.test("WatchEvents streams end with UNAVAILABLE when an instance was cut off from NATS, repeat nothing, and a new one is refused while NATS is away", async () => {
  await using setup = await natsCutToSecondInstance(settings, { grpc: true });
  const { cluster, proxy } = setup;
  const admins = [await cluster.admin(0), await cluster.admin(1)];
  const chat = await admins[0]!.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const watchers = admins.map((admin) => follow(admin.watch({})));
  await Promise.all(watchers.map((watcher) => watcher.subscribed));
  await using alice = await joinChat(cluster, "alice", chat.id, 1);
  const before = await sendText(alice, "acme", "before the cut");
  for (const watcher of watchers) assert.deepEqual(messageIds(await watcher.take(1)), [before.id]);

  await proxy.cut();
  await sendText(alice, "acme", "during the cut");
  const refused = follow(admins[1]!.watch({}));
  const status = await within(refused.ended, 10_000, "the answer to a watch while cut off");
  assert.equal(status.code, Status.UNAVAILABLE);
  assert.match(status.details, /NATS/);

  proxy.restore();
  for (const [index, watcher] of watchers.entries()) {
    const ended = await within(watcher.ended, 15_000, `the end of stream ${index}`);
    assert.equal(ended.code, Status.UNAVAILABLE, `stream ${index}: ${ended.details}`);
    assert.match(ended.details, /events may be missing/);
    const ids = messageIds(watcher.events);
    assert.equal(new Set(ids).size, ids.length, `stream ${index} repeated an event: ${ids}`);
  }

  // A stream opened once NATS is back gets what is sent next, and nothing sent again.
  const again = follow(admins[0]!.watch({}));
  await again.subscribed;
  const after = await sendText(alice, "acme", "after the cut");
  const [first] = await again.take(1);
  assert.equal(first!.message_id, after.id, "the first event is the new message");
});
