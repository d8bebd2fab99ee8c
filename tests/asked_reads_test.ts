/**
 * What a read a user asks for costs the store: `load_latest_chat`, `unread_message` and
 * `list_chats` each check that the user is still in the chat and not banned in the read's own
 * statement, and `edit_message` and `delete_message` in the change's own; the admin plane's
 * DeleteMessage takes the message's sender and the chat's parties from its own. Counted by the
 * store calls an instance reports on `/metrics` (one statement each for these).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { failure, type Reply, Status } from "./support/admin_client.ts";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { acked, joinAllChats, joinChat, sendText } from "./support/steps.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

const CALLS = /^chat_db_query_duration_seconds_count\{operation="(\w+)",outcome="\w+"\} (\d+)$/;

/** The store calls an instance has made, by operation. */
async function storeCalls(cluster: TestCluster, instance: number): Promise<Map<string, number>> {
  const response = await fetch(`${cluster.instances[instance]!.httpUrl}/metrics`);
  const calls = new Map<string, number>();
  for (const line of (await response.text()).split("\n")) {
    const [, operation, count] = line.match(CALLS) ?? [];
    if (operation) calls.set(operation, (calls.get(operation) ?? 0) + Number(count));
  }
  return calls;
}

/** The store calls `frame` cost the instance, by operation (those it made none of left out). */
function callsOf(cluster: TestCluster, instance: number, socket: TestSocket, frame: Frame) {
  return callsDuring(cluster, instance, () => acked(socket, frame));
}

/** The store calls the instance made while `request` ran, by operation (as callsOf). */
async function callsDuring(
  cluster: TestCluster,
  instance: number,
  request: () => Promise<unknown>,
) {
  const before = await storeCalls(cluster, instance);
  await request();
  const after = await storeCalls(cluster, instance);
  return Object.fromEntries(
    [...after].flatMap(([operation, count]) => {
      const made = count - (before.get(operation) ?? 0);
      return made === 0 ? [] : [[operation, made]];
    }),
  );
}

Deno.test("load_latest_chat, unread_message and list_chats each cost one store call", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("cust-a", "vend-a");
  await using customer = await joinChat(cluster, "cust-a", chat.id);
  await using customerAll = await joinAllChats(cluster, "cust-a");
  await using vendor = await joinChat(cluster, "vend-a", chat.id);
  await sendText(vendor, "cust-a", "hello");

  const rows: Array<[string, TestSocket, Frame]> = [
    ["/v1/ws/chat/{id}/", customer, { action: "load_latest_chat" }],
    ["/v1/ws/chat/{id}/", customer, { action: "unread_message" }],
    ["/v1/ws/chats/", customerAll, { action: "load_latest_chat", chat_id: chat.id }],
    ["/v1/ws/chats/", customerAll, { action: "unread_message", chat_id: chat.id }],
    ["/v1/ws/chats/", customerAll, { action: "list_chats" }],
  ];
  const costs = [];
  for (const [name, socket, frame] of rows) {
    costs.push(
      `${name} ${frame.action}: ${JSON.stringify(await callsOf(cluster, 0, socket, frame))}`,
    );
  }
  assert.deepEqual(costs, [
    '/v1/ws/chat/{id}/ load_latest_chat: {"historyAsked":1}',
    '/v1/ws/chat/{id}/ unread_message: {"unreadAsked":1}',
    '/v1/ws/chats/ load_latest_chat: {"historyAsked":1}',
    '/v1/ws/chats/ unread_message: {"unreadAsked":1}',
    '/v1/ws/chats/ list_chats: {"listChatsAsked":1}',
  ]);
});

Deno.test("load_latest_chat and unread_message of a chat a /v1/ws/chats/ socket has not heard of yet read no membership beside their own statement", async () => {
  // the second instance is cut off from NATS: the chat created meanwhile is not held by its
  // chats socket, which has only the chat_id of the frames (no sweep finds it first)
  await using setup = await natsCutToSecondInstance({ FEED_SWEEP_SECONDS: "600" });
  const { cluster, proxy } = setup;
  await using customerAll = await joinAllChats(cluster, "cust-a", 1);
  await proxy.cut();
  const chat = await cluster.main.service.chat.createChat("cust-a", "vend-a");
  const rows: Frame[] = [
    // in upper case: answered under the id as stored, as a chat held is
    { action: "load_latest_chat", chat_id: chat.id.toUpperCase() },
    { action: "unread_message", chat_id: chat.id },
  ];
  const costs = [];
  for (const frame of rows) {
    costs.push(`${frame.action}: ${JSON.stringify(await callsOf(cluster, 1, customerAll, frame))}`);
  }
  assert.deepEqual(costs, [
    'load_latest_chat: {"historyAsked":1}',
    'unread_message: {"unreadAsked":1}',
  ]);
  assert.deepEqual(customerAll.pending("latest_chat").map((frame: Frame) => frame.chat_id), [
    chat.id,
  ]);
  assert.deepEqual(customerAll.pending("unread_messages").map((frame: Frame) => frame.chat_id), [
    chat.id,
  ]);
});

Deno.test("edit_message and delete_message each cost one store call: the change checks that the sender is still in the chat and not banned in its own statement", async () => {
  // no sweep: the chat made behind the chats socket's back stays one it has not heard of
  await using cluster = await startCluster({ nats: false, env: { FEED_SWEEP_SECONDS: "600" } });
  const chat = await cluster.main.service.chat.createChat("cust-a", "vend-a");
  await using customer = await joinChat(cluster, "cust-a", chat.id);
  await using customerAll = await joinAllChats(cluster, "cust-a");
  const first = await sendText(customer, "vend-a", "helo");
  const second = await sendText(customer, "vend-a", "bye");
  // a chat the chats socket does not hold: made in the store, as an import does, told to no one
  const sql = postgres(cluster.databaseUrl, { max: 1, onnotice: () => {} });
  const [unheld] = await sql<Array<{ id: string }>>`
    insert into chats (user_id, vendor_id) values ('cust-a', 'vend-b') returning id`
    .finally(() => sql.end());
  await using customerUnheld = await joinChat(cluster, "cust-a", unheld!.id);
  await using vendorUnheld = await joinChat(cluster, "vend-b", unheld!.id);
  const third = await sendText(customerUnheld, "vend-b", "ciao");

  const edit = (content: string) => ({ action: "edit_message", message_id: first.id, content });
  const rows: Array<[string, TestSocket, Frame]> = [
    ["/v1/ws/chat/{id}/", customer, edit("hello")],
    // the same text again (a retry): answered as it is
    ["/v1/ws/chat/{id}/", customer, edit("hello")],
    ["/v1/ws/chats/", customerAll, { ...edit("hello!"), chat_id: chat.id }],
    ["/v1/ws/chat/{id}/", customer, { action: "delete_message", message_id: second.id }],
    // the own tombstone again (a retry): done
    ["/v1/ws/chat/{id}/", customer, { action: "delete_message", message_id: second.id }],
    ["/v1/ws/chats/", customerAll, {
      action: "delete_message",
      chat_id: chat.id,
      message_id: first.id,
    }],
    // not held: in upper case, told under the id as stored, as a chat held is
    ["/v1/ws/chats/ (not held)", customerAll, {
      action: "edit_message",
      chat_id: unheld!.id.toUpperCase(),
      message_id: third.id,
      content: "ciao!",
    }],
    ["/v1/ws/chats/ (not held)", customerAll, {
      action: "delete_message",
      chat_id: unheld!.id,
      message_id: third.id,
    }],
  ];
  const costs = [];
  for (const [name, socket, frame] of rows) {
    costs.push(
      `${name} ${frame.action}: ${JSON.stringify(await callsOf(cluster, 0, socket, frame))}`,
    );
  }
  assert.deepEqual(costs, [
    '/v1/ws/chat/{id}/ edit_message: {"editOwnMessage":1}',
    '/v1/ws/chat/{id}/ edit_message: {"editOwnMessage":1}',
    '/v1/ws/chats/ edit_message: {"editOwnMessage":1}',
    '/v1/ws/chat/{id}/ delete_message: {"deleteOwnMessage":1}',
    '/v1/ws/chat/{id}/ delete_message: {"deleteOwnMessage":1}',
    '/v1/ws/chats/ delete_message: {"deleteOwnMessage":1}',
    '/v1/ws/chats/ (not held) edit_message: {"editOwnMessage":1}',
    '/v1/ws/chats/ (not held) delete_message: {"deleteOwnMessage":1}',
  ]);
  // the chat's other side is told both, on the chat's subject
  const edited = await vendorUnheld.nextOfType("message_edited");
  assert.deepEqual([edited.chat_id, edited.message.content], [unheld!.id, "ciao!"]);
  const deleted = await vendorUnheld.nextOfType("message_deleted");
  assert.deepEqual([deleted.chat_id, deleted.message_id, deleted.deleted_by], [
    unheld!.id,
    third.id,
    "cust-a",
  ]);
  // and the chats socket still does not hold the chat: its events are not the socket's
  assert.deepEqual(customerAll.frames.filter((frame) => frame.chat_id === unheld!.id), []);
});

Deno.test("the gRPC DeleteMessage costs one store call: the deletion answers the message's sender for the audit and the chat's parties for the event", async () => {
  await using cluster = await startCluster({ grpc: true, nats: false });
  const admin = await cluster.admin(0);
  const chat = await cluster.main.service.chat.createChat("cust-a", "vend-a");
  await using customer = await joinChat(cluster, "cust-a", chat.id);
  await using vendor = await joinChat(cluster, "vend-a", chat.id);
  const first = await sendText(customer, "vend-a", "buy cheap watches");
  const second = await sendText(vendor, "cust-a", "cheap watches here");
  const by = { moderator_id: "mod-1", reason: "spam" };
  const deleteMessage = (messageId: string) => () =>
    admin.call("DeleteMessage", { message_id: messageId, ...by });

  const rows: Array<[string, () => Promise<unknown>]> = [
    ["DeleteMessage", deleteMessage(first.id)],
    // deleted already (a retry whose answer was lost): audited alone, told to no one
    ["DeleteMessage (deleted)", deleteMessage(first.id)],
    // in upper case: audited and told under the id as stored
    ["DeleteMessage (upper case)", deleteMessage(second.id.toUpperCase())],
    ["DeleteMessage (unknown)", async () => {
      const unknown = await failure(deleteMessage(crypto.randomUUID())());
      assert.equal(unknown.code, Status.NOT_FOUND, unknown.details);
    }],
  ];
  const costs = [];
  for (const [name, request] of rows) {
    costs.push(`${name}: ${JSON.stringify(await callsDuring(cluster, 0, request))}`);
  }
  assert.deepEqual(costs, [
    'DeleteMessage: {"deleteMessage":1}',
    'DeleteMessage (deleted): {"deleteMessage":1}',
    'DeleteMessage (upper case): {"deleteMessage":1}',
    'DeleteMessage (unknown): {"deleteMessage":1}',
  ]);

  // each side is told each deletion once, under the chat's and the message's ids as stored
  for (const socket of [customer, vendor]) {
    const told = [];
    for (let deletion = 0; deletion < 2; deletion++) {
      const event = await socket.nextOfType("message_deleted");
      assert.equal(typeof event.deleted_at, "string");
      told.push([event.chat_id, event.message_id, event.seq, event.deleted_by]);
    }
    assert.deepEqual(told, [
      [chat.id, first.id, first.seq, "mod-1"],
      [chat.id, second.id, second.seq, "mod-1"],
    ]);
  }
  await sendText(customer, "vend-a", "still here");
  assert.deepEqual(customer.pending("message_deleted"), []);
  // the audit names each message's sender: the one deleted already too, and none for the unknown
  const actions = (await admin.call("ListModerationActions", {})).actions;
  assert.deepEqual(
    actions.map((action: Reply) => [action.target_user_id, action.target_message_id]),
    [["vend-a", second.id], ["cust-a", first.id], ["cust-a", first.id]],
  );
});
